package media

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	pngenc "image/png"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

func picture(w, h int, alpha uint8) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			m.SetNRGBA(x, y, color.NRGBA{R: uint8(x), G: uint8(y), B: 90, A: alpha})
		}
	}
	return m
}

func encoded(t *testing.T, format string, m image.Image) []byte {
	var buf bytes.Buffer
	switch format {
	case "jpeg":
		require.NoError(t, jpeg.Encode(&buf, m, nil))
	case "png":
		require.NoError(t, pngenc.Encode(&buf, m))
	case "gif":
		require.NoError(t, gif.Encode(&buf, m, nil))
	}
	return buf.Bytes()
}

// A cached image gets its size and, when larger than 480 px, a preview made
// once and served at /media/{id}/thumb; smaller ones are their own.
func TestPreviewsAreMadeWhenCached(t *testing.T) {
	o := newOrigin(t)
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)
	api := newAPI(t, st)

	cases := []struct {
		name, ctype    string
		data           []byte
		w, h           int    // the original's size recorded
		thumbType      string // "" : no preview of its own
		thumbW, thumbH int
	}{
		{"large photo", "image/jpeg", encoded(t, "jpeg", picture(1200, 800, 255)), 1200, 800, "image/jpeg", 480, 320},
		{"tall transparent png", "image/png", encoded(t, "png", picture(300, 900, 128)), 300, 900, "image/png", 160, 480},
		{"wide gif", "image/gif", encoded(t, "gif", picture(960, 100, 255)), 960, 100, "image/jpeg", 480, 50},
		{"small png", "image/png", encoded(t, "png", picture(48, 32, 255)), 48, 32, "", 48, 32},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := o.bytes("/p/"+c.name, c.ctype, c.data)
			_, id, _ := saveMedia(t, st, store.ProviderInfobip, "pic-"+string(rune('a'+i)), url)
			md := waitState(t, st, id, store.MediaCached)
			require.Equal(t, c.w, md.Width)
			require.Equal(t, c.h, md.Height)
			require.Equal(t, c.thumbType, md.Thumb)

			resp, body := do(t, http.MethodGet, api.URL+"/media/"+id+"/thumb", true, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
			require.NoError(t, err)
			require.Equal(t, c.thumbW, cfg.Width)
			require.Equal(t, c.thumbH, cfg.Height)
			if c.thumbType == "" {
				require.Equal(t, c.data, body, "a small image is its own preview")
			} else {
				require.Equal(t, c.thumbType, resp.Header.Get("Content-Type"))
				require.Equal(t, "image/"+format, c.thumbType)
				require.Less(t, len(body), len(c.data)+1)
			}
			resp, body = do(t, http.MethodGet, api.URL+"/media/"+id, true, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, c.data, body, "the original is untouched")
		})
	}

	// Not an image: no preview, no size.
	url := o.bytes("/doc.pdf", "application/pdf", []byte("%PDF-1.4 not a picture"))
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "doc-1", url)
	md := waitState(t, st, id, store.MediaCached)
	require.Zero(t, md.Width)
	resp, _ := do(t, http.MethodGet, api.URL+"/media/"+id+"/thumb", true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Deleting the media drops its preview too.
	_, big, _ := saveMedia(t, st, store.ProviderInfobip, "pic-a", "")
	require.NoError(t, st.DeleteMedia(context.Background(), big))
	resp, _ = do(t, http.MethodGet, api.URL+"/media/"+big+"/thumb", true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Empty(t, st.Check())
}

// A canvas too large to decode safely gets no preview (and is not decoded).
func TestPreviewRefusesHugeCanvases(t *testing.T) {
	// A PNG header claiming 100,000 × 100,000 pixels.
	var buf bytes.Buffer
	require.NoError(t, pngenc.Encode(&buf, picture(1, 1, 255)))
	b := buf.Bytes()
	// IHDR width and height are at bytes 16..23.
	copy(b[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	require.Nil(t, imageInfo(b))
}
