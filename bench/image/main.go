// Command image benchmarks `podwarden image patch` against a local
// docker-registry: it patches a large multi-layer base (default 2 GiB in
// 20 layers of random data) with a file patch and compares time and bytes
// moved with pulling and pushing the whole image (what `docker build` FROM
// the base plus a COPY costs when the build host starts cold), measured as
// a copy to a second registry.
//
// The base is generated once, deterministically, into a registry whose
// storage lives under -cache (gitignored); later runs reuse it.
//
//	go run ./bench/image                  # 2 GiB, 20 layers
//	go run ./bench/image -size 256MiB -baseline=false
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"archive/tar"
	"compress/gzip"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"podwarden/internal/image"
	"podwarden/internal/image/regtest"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench/image", flag.ContinueOnError)
	size := fs.String("size", "2GiB", "total base image size")
	layers := fs.Int("layers", 20, "number of base layers")
	cache := fs.String("cache", "bench/image/.cache", "directory for the cached registry storage")
	runs := fs.Int("runs", 5, "patch runs")
	baseline := fs.Bool("baseline", true, "also measure a full pull and push to a second registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	total, err := parseSize(*size)
	if err != nil {
		return err
	}
	if *layers <= 0 || total < int64(*layers) {
		return errors.New("need at least one layer and one byte per layer")
	}
	dir := filepath.Join(*cache, fmt.Sprintf("registry-%s-%d", *size, *layers))
	reg, err := regtest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer reg.Stop()
	ref, err := name.ParseReference(reg.Host + "/pods/base:v1")
	if err != nil {
		return err
	}
	if _, err := remote.Head(ref); err != nil {
		fmt.Fprintf(out, "generating %s base in %d layers into %s (once) ...\n", *size, *layers, dir)
		start := time.Now()
		if err := generate(ref, total, *layers); err != nil {
			return err
		}
		fmt.Fprintf(out, "generated in %s\n", time.Since(start).Round(time.Millisecond))
	}
	img, err := remote.Image(ref)
	if err != nil {
		return err
	}
	imgSize, err := compressedSize(img)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "base %s: %d layers, %d bytes\n", ref, *layers, imgSize)

	var times []time.Duration
	var bytes []int64
	for i := range *runs {
		var c image.Counter
		p, err := image.NewPatcher(image.WithTransport(c.Transport(nil)), image.WithKeychain(authn.NewMultiKeychain()))
		if err != nil {
			return err
		}
		// A new patch each run (the content carries a nonce), so every run
		// really pushes to a new tag.
		patch := image.Patch{ID: "oom-score-adj", Files: []image.File{{
			Path: "/usr/local/bin/pod-start", Mode: 0o755,
			Content: []byte("#!/bin/sh\necho 900 > /proc/self/oom_score_adj\n# run " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\nexec /sbin/init\n"),
		}}}
		start := time.Now()
		res, err := p.Patch(ctx, ref, []image.Patch{patch})
		if err != nil {
			return err
		}
		d := time.Since(start)
		times = append(times, d)
		bytes = append(bytes, c.Total())
		fmt.Fprintf(out, "patch run %d: %s -> %s: %s, %d bytes moved (%.5f%% of the image), %d requests\n",
			i+1, ref, res.Ref.(name.Tag).TagStr(), d.Round(time.Microsecond), c.Total(), 100*float64(c.Total())/float64(imgSize), c.Requests())
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	sort.Slice(bytes, func(i, j int) bool { return bytes[i] < bytes[j] })
	fmt.Fprintf(out, "patch: median %s (min %s, max %s), median %d bytes moved = %.5f%% of %d\n",
		times[len(times)/2].Round(time.Microsecond), times[0].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond),
		bytes[len(bytes)/2], 100*float64(bytes[len(bytes)/2])/float64(imgSize), imgSize)

	if !*baseline {
		return nil
	}
	tmp, err := os.MkdirTemp(*cache, "baseline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dst, err := regtest.Start(ctx, tmp)
	if err != nil {
		return err
	}
	defer dst.Stop()
	var c image.Counter
	start := time.Now()
	src, err := remote.Image(ref, remote.WithTransport(c.Transport(nil)))
	if err != nil {
		return err
	}
	to, err := name.ParseReference(dst.Host + "/pods/base:v1")
	if err != nil {
		return err
	}
	if err := remote.Write(to, src, remote.WithTransport(c.Transport(nil))); err != nil {
		return fmt.Errorf("baseline copy: %w", err)
	}
	d := time.Since(start)
	fmt.Fprintf(out, "baseline pull+push of the whole image: %s, %d bytes moved (%.1f%% of the image)\n",
		d.Round(time.Millisecond), c.Total(), 100*float64(c.Total())/float64(imgSize))
	fmt.Fprintf(out, "patch vs baseline: %.0fx faster, %.0fx fewer bytes\n",
		float64(d)/float64(times[len(times)/2]), float64(c.Total())/float64(bytes[len(bytes)/2]))
	return nil
}

// generate pushes a deterministic random image of total bytes in n layers.
// Layers hold one file of pseudo-random bytes, gzip'd without compression
// (random data does not compress; this keeps generation I/O bound).
func generate(ref name.Reference, total int64, n int) error {
	img := empty.Image
	per := total / int64(n)
	for i := range n {
		seed := uint64(i)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return randomLayer(seed, per), nil
		})
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	return remote.Write(ref, img)
}

func randomLayer(seed uint64, size int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.NoCompression)
		tw := tar.NewWriter(zw)
		err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/layer-%02d.bin", seed), Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		if err == nil {
			_, err = io.CopyN(tw, &rng{r: rand.NewChaCha8(seedBytes(seed))}, size)
		}
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return b
}

type rng struct{ r *rand.ChaCha8 }

func (r *rng) Read(p []byte) (int, error) { return r.r.Read(p) }

func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q (e.g. 2GiB)", s)
	}
	return n, nil
}
