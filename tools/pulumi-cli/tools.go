//go:build tools

// Package tools pins the Pulumi CLI this project builds (scripts/install-pulumi.sh): the
// version is the one in go.mod; nothing here is compiled into the project.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
