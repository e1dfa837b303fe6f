// Package shim is copied by scripts/build-docker-provider.sh into a writable
// copy of the upstream Terraform provider module
// (github.com/terraform-providers/terraform-provider-docker, served by the Go
// module proxy as github.com/kreuzwerker/terraform-provider-docker).
//
// Why it exists: upstream builds its SDKv2 provider in internal/provider, and
// Go forbids importing an `internal` package from another module. A package
// that lives inside the upstream module itself may import it, so this thin
// file is the one place that crosses that boundary. It must stay free of logic
// so that bumping the upstream version only means re-reading provider.New.
//
// It lives under a leading-underscore directory in our repo so that the Go tool
// ignores it there ("./..." skips _dirs); it only compiles inside the copy.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"

	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns upstream's SDKv2 provider. version is only used by
// upstream for its user agent string.
//
// Upstream also serves a Plugin Framework provider (muxed in its main.go), but
// that one only carries docker_compose, data sources and actions; every
// resource we bridge (container, image, network, volume, ...) is SDKv2.
func NewProvider(version string) *schema.Provider {
	return provider.New(version)()
}
