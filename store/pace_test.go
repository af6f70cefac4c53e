package store

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPacedWriter(t *testing.T) {
	src := mediaPattern(1 << 20)
	var out bytes.Buffer
	n, err := io.Copy(PacedWriter(context.Background(), &out, 1<<30), bytes.NewReader(src))
	require.NoError(t, err)
	require.Equal(t, int64(len(src)), n)
	require.Equal(t, src, out.Bytes())

	require.Equal(t, io.Writer(&out), PacedWriter(context.Background(), &out, 0), "no limit: w itself")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = PacedWriter(ctx, io.Discard, 1).Write([]byte("x"))
	require.ErrorIs(t, err, context.Canceled)
}
