package retry

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0}, // in the past
		{"soon", 0},
		{"", 0},
		{"-5", 0},
		{"999x", 0},
	} {
		require.Equal(t, c.want, After(c.in, now), "%q", c.in)
	}
}

// Wait doubles from Min per failure, stops at Max, and jitters within the
// upper half of the step; a Max below Min lowers the first step.
func TestBackoffWait(t *testing.T) {
	for _, c := range []struct {
		b    Backoff
		n    int
		step time.Duration
	}{
		{Backoff{time.Second, time.Minute}, 1, time.Second},
		{Backoff{time.Second, time.Minute}, 2, 2 * time.Second},
		{Backoff{time.Second, time.Minute}, 4, 8 * time.Second},
		{Backoff{time.Second, time.Minute}, 7, time.Minute},
		{Backoff{time.Second, time.Minute}, 1000, time.Minute},
		{Backoff{5 * time.Second, time.Second}, 1, time.Second},
		{Backoff{5 * time.Second, time.Second}, 3, time.Second},
		{Backoff{0, time.Second}, 3, 0},
	} {
		for range 50 {
			w := c.b.Wait(c.n)
			require.GreaterOrEqual(t, w, c.step/2, "%+v n=%d", c.b, c.n)
			require.LessOrEqual(t, w, c.step, "%+v n=%d", c.b, c.n)
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, Sleep(ctx, time.Hour))
	require.True(t, Sleep(context.Background(), 0))
}

func TestIdle(t *testing.T) {
	ch := make(chan int, 1)
	kick := make(chan struct{}, 1)
	ch <- 1
	require.True(t, Idle(context.Background(), time.Hour, ch, kick), "a change wakes")
	kick <- struct{}{}
	require.True(t, Idle(context.Background(), time.Hour, ch, kick), "a kick wakes")
	close(ch)
	require.False(t, Idle(context.Background(), time.Hour, ch, kick), "a closed change channel stops")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, Idle(ctx, time.Hour, make(chan int), kick), "the end of ctx stops")
}
