package media

import (
	"bytes"
	"image"
	_ "image/gif" // decoders the previews read
	"image/jpeg"
	pngenc "image/png" // (security_test.go has a png helper)

	"golang.org/x/image/draw"

	"imchannel/store"
)

// Previews fit in a thumbSize×thumbSize box: a thread shows them instead
// of the originals, which link to the full bytes.
const (
	thumbSize = 480
	// maxPixels bounds what is decoded for a preview: a tiny file can
	// claim a huge canvas (a decompression bomb).
	maxPixels = 40_000_000
)

// imageInfo reads an image's size and makes its preview: a JPEG for an
// opaque image, a PNG when it has transparency. Bytes that are not a JPEG,
// PNG or GIF, or too large a canvas, give nil (no preview, no size). An
// image that already fits the box gets its size and no preview: it is its
// own.
func imageInfo(data []byte) *store.ImageInfo {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return nil
	}
	switch format {
	case "jpeg", "png", "gif":
	default:
		return nil
	}
	info := &store.ImageInfo{Width: cfg.Width, Height: cfg.Height}
	if cfg.Width <= thumbSize && cfg.Height <= thumbSize {
		return info
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return info
	}
	w, h := fit(cfg.Width, cfg.Height, thumbSize)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	var buf bytes.Buffer
	if opaque(dst) {
		if jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}) != nil {
			return info
		}
		info.ThumbType = "image/jpeg"
	} else {
		if pngenc.Encode(&buf, dst) != nil {
			return info
		}
		info.ThumbType = "image/png"
	}
	info.Thumb = buf.Bytes()
	return info
}

// fit scales w×h to fit in a box×box square, keeping the aspect ratio.
func fit(w, h, box int) (int, int) {
	if w >= h {
		return box, max(1, h*box/w)
	}
	return max(1, w*box/h), box
}

func opaque(m *image.RGBA) bool {
	for i := 3; i < len(m.Pix); i += 4 {
		if m.Pix[i] != 0xff {
			return false
		}
	}
	return true
}
