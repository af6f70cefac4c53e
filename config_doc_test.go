package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/config"
)

// TestReadmeConfig: the README's short config is a valid config that may
// listen beyond loopback (every route group has credentials). Every key with
// its default is checked against docs/configuration.md by
// TestOpsConfigReference.
func TestReadmeConfig(t *testing.T) {
	_, rest, ok := strings.Cut(docSection(t, "README.md", "A short config"), "\n```toml\n")
	require.True(t, ok, "the README shows a config")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	cfg := config.Default()
	require.NoError(t, config.Parse([]byte(block), &cfg))
	require.NoError(t, cfg.Validate())
	require.NoError(t, cfg.CheckExposure(), "the example listens beyond loopback with every group's credentials")
}
