package release

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/ignore"
	"sigs.k8s.io/yaml"
)

// chartPackage is the chart as a release publishes it: the .tgz `helm
// package` would write (but reproducible) and the Chart.yaml metadata as
// JSON, the config blob `helm push` sends.
type chartPackage struct {
	name, version string
	tgz           []byte
	config        []byte
	description   string
}

// packageChart packs the chart at dir for the release: Chart.yaml's version
// and appVersion set to it, values.yaml's image.repository and
// image.digest set to the index just built, so an install from this
// package runs exactly that image. Comments and layout of both files stay
// as written (they are the chart's documentation): the four lines are
// replaced in place, and packageChart fails if any is missing rather than
// publish a chart that still points at another image.
func packageChart(dir, chartVersion, appVersion, repository, digest string, mtime time.Time) (*chartPackage, error) {
	rules, err := helmIgnore(dir)
	if err != nil {
		return nil, err
	}
	var files []entry
	var meta []byte
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, fi) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("chart file %s is not a regular file (%s)", rel, fi.Mode().Type())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch rel {
		case "Chart.yaml":
			if data, err = setChartVersion(data, chartVersion, appVersion); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			meta = data
		case "values.yaml":
			if data, err = setImage(data, repository, digest); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		files = append(files, entry{name: "podwarden/" + rel, mode: 0o644, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("packaging the chart %s: %w", dir, err)
	}
	if meta == nil {
		return nil, fmt.Errorf("packaging the chart %s: no Chart.yaml", dir)
	}
	var m struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	config, err := yaml.YAMLToJSON(meta)
	if err == nil {
		err = json.Unmarshal(config, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s/Chart.yaml: %w", dir, err)
	}
	if m.Name != "podwarden" {
		// Archive entries and the OCI repository are named after it.
		return nil, fmt.Errorf("chart %s is named %q, want podwarden", dir, m.Name)
	}
	tgz, err := tarGz(files, mtime)
	if err != nil {
		return nil, fmt.Errorf("packaging the chart %s: %w", dir, err)
	}
	return &chartPackage{name: m.Name, version: chartVersion, tgz: tgz, config: config, description: m.Description}, nil
}

func helmIgnore(dir string) (*ignore.Rules, error) {
	rules := ignore.Empty()
	if _, err := os.Stat(filepath.Join(dir, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.ParseFile(filepath.Join(dir, ignore.HelmIgnore)); err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", dir, ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	return rules, nil
}

var (
	reChartVersion = regexp.MustCompile(`(?m)^version:.*$`)
	reAppVersion   = regexp.MustCompile(`(?m)^appVersion:.*$`)
)

func setChartVersion(data []byte, version, appVersion string) ([]byte, error) {
	for _, r := range []struct {
		re   *regexp.Regexp
		line string
	}{
		{reChartVersion, "version: " + version},
		{reAppVersion, fmt.Sprintf("appVersion: %q", appVersion)},
	} {
		if n := len(r.re.FindAll(data, -1)); n != 1 {
			return nil, fmt.Errorf("%d top-level lines match %s, want 1", n, r.re)
		}
		data = r.re.ReplaceAllLiteral(data, []byte(r.line))
	}
	return data, nil
}

// setImage sets repository and digest in the top-level image: block of
// values.yaml (two-space indented keys, as the chart writes them).
func setImage(data []byte, repository, digest string) ([]byte, error) {
	lines := strings.SplitAfter(string(data), "\n")
	in, set := false, map[string]int{}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "image:"):
			in = true
			continue
		case in && l != "\n" && !strings.HasPrefix(l, " "):
			in = false
		}
		if !in {
			continue
		}
		for key, val := range map[string]string{"repository": repository, "digest": digest} {
			if strings.HasPrefix(l, "  "+key+":") {
				set[key]++
				lines[i] = fmt.Sprintf("  %s: %q\n", key, val)
			}
		}
	}
	if set["repository"] != 1 || set["digest"] != 1 {
		return nil, fmt.Errorf("image block: found repository %d times and digest %d times, want once each", set["repository"], set["digest"])
	}
	return []byte(strings.Join(lines, "")), nil
}

// chartFileName is the package's name as `helm package` writes it.
func chartFileName(name, version string) string {
	return name + "-" + version + ".tgz"
}
