// Command pulumi-resource-docker is a Pulumi resource provider plugin that
// bridges the kreuzwerker Terraform Docker provider, built only from modules
// the Go module proxy serves.
//
// Why we build our own: the pulumi_docker Python SDK needs a provider plugin
// named "docker" at the SDK's version, and pulumi-docker's own provider Go
// module is not available from the proxy, so we recreate the small part of its
// tfbridge mapping that the SDK relies on (tokens and renamed fields). Only the
// bridged resources are provided; pulumi-docker's native docker.Image (build &
// push) resource is not.
//
// Build with scripts/build-docker-provider.sh: it needs a writable copy of the
// upstream module plus our shim (see _upstream_overlay/shim), wired in by the
// replace directive in go.mod, so `go build` in this directory alone fails.
package main

import (
	"context"
	"runtime"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"

	"github.com/terraform-providers/terraform-provider-docker/shim"
)

const (
	// pkgName is the Pulumi package name: the engine looks for the plugin
	// "docker" and the SDK's resource tokens start with "docker:".
	pkgName = "docker"
	// mod is the single module every upstream resource is mapped into, as in
	// the published SDK (docker:index/...).
	mod = "index"
)

// version is what GetPluginInfo reports. It must equal the pulumi_docker SDK
// version in requirements.txt: the SDK asks the engine for plugin docker at
// exactly that version. The build script sets it with -X (from
// PULUMI_DOCKER_VERSION, default 5.2.0).
var version = "5.2.0"

// defaultHost mirrors the Docker CLI's own default, so a program that sets no
// provider config talks to the local engine.
func defaultHost() string {
	if runtime.GOOS == "windows" {
		return "npipe:////./pipe/docker_engine"
	}
	return "unix:///var/run/docker.sock"
}

func providerInfo() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:       shimv2.NewProvider(shim.NewProvider(version)),
		Name:    pkgName,
		Version: version,
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {
				Default: &tfbridge.DefaultInfo{
					EnvVars: []string{"DOCKER_HOST"},
					ComputeDefault: func(context.Context, tfbridge.ComputeDefaultOptions) (any, error) {
						return defaultHost(), nil
					},
				},
			},
			// The published SDK exposes a list named registryAuth; without these
			// overrides the bridge would pluralise the name.
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		// Only resources whose published token or field names differ from what
		// MustComputeTokens would derive are listed; the rest are computed.
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_config": {Tok: tfbridge.MakeResource(pkgName, mod, "ServiceConfig")},
			"docker_container": {
				Tok: tfbridge.MakeResource(pkgName, mod, "Container"),
				// Fixed container names clash if the replacement is created first.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					// One argv, not several commands: the SDK calls it "command".
					"command": {Name: "command"},
					// A list, but the SDK name is not pluralised.
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {
				Tok:    tfbridge.MakeResource(pkgName, mod, "RemoteImage"),
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image": {Tok: tfbridge.MakeDataSource(pkgName, mod, "getRemoteImage")},
		},
		// Empty metadata: we have no history of earlier schemas (that is what
		// pulumi-docker's bridge-metadata.json records for auto-aliasing), and
		// the runtime needs none of it for SDKv2-only, non-muxed providers.
		MetadataInfo: tfbridge.NewProviderMetadata(nil),
	}
	info.MustComputeTokens(tokens.SingleModule("docker_", mod, tokens.MakeStandard(pkgName)))
	// Resources with an optional string "name" get Pulumi autonames (name plus
	// a random suffix) when the program gives none, as in the published SDK.
	info.SetAutonaming(255, "-")
	return info
}

func main() {
	// No Pulumi schema is embedded: the engine does not ask a provider for its
	// schema when running a Python program, and the bridge treats an empty
	// schema as "skip input type checking".
	tfbridge.Main(pkgName, version, providerInfo(), nil)
}
