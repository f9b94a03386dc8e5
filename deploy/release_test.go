package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"
)

// goreleaser is the part of ../.goreleaser.yaml these tests read.
type goreleaser struct {
	Before struct {
		Hooks []string `json:"hooks"`
	} `json:"before"`
	Builds []struct {
		ID      string   `json:"id"`
		Main    string   `json:"main"`
		Binary  string   `json:"binary"`
		Env     []string `json:"env"`
		Flags   []string `json:"flags"`
		Ldflags []string `json:"ldflags"`
		Goos    []string `json:"goos"`
		Goarch  []string `json:"goarch"`
	} `json:"builds"`
	DockersV2 []struct {
		IDs        []string          `json:"ids"`
		Dockerfile string            `json:"dockerfile"`
		Images     []string          `json:"images"`
		Tags       []string          `json:"tags"`
		Platforms  []string          `json:"platforms"`
		BuildArgs  map[string]string `json:"build_args"`
		Flags      []string          `json:"flags"`
	} `json:"dockers_v2"`
	Publishers []struct {
		Cmd string `json:"cmd"`
	} `json:"publishers"`
}

func readGoreleaser(t *testing.T) goreleaser {
	t.Helper()
	b, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var g goreleaser
	if err := yaml.Unmarshal(b, &g); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if len(g.Builds) != 1 || len(g.DockersV2) != 1 {
		t.Fatalf(".goreleaser.yaml: %d builds and %d dockers_v2, want one of each", len(g.Builds), len(g.DockersV2))
	}
	return g
}

// chartImage is the repository the chart runs by default, and its appVersion.
func chartImage(t *testing.T) (repository, appVersion string) {
	t.Helper()
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	image, _ := vals.Table("image")
	repository, _ = image["repository"].(string)
	c, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(c, &meta); err != nil {
		t.Fatal(err)
	}
	return repository, meta.AppVersion
}

// The release publishes the image the chart pulls: its name, at the chart's appVersion (the
// release's version without the "v"), for the platforms the binaries are built for; and the
// chart itself at that version, where no image lives.
func TestReleasePublishesTheImageTheChartPulls(t *testing.T) {
	g := readGoreleaser(t)
	repository, appVersion := chartImage(t)
	d := g.DockersV2[0]
	if !slices.Equal(d.Images, []string{repository}) {
		t.Errorf("the release pushes %q; the chart pulls %s", d.Images, repository)
	}
	if !slices.Contains(d.Tags, "{{ .Version }}") {
		t.Errorf("image tags %q lack {{ .Version }}, the tag the chart's appVersion names", d.Tags)
	}
	if strings.HasPrefix(appVersion, "v") {
		t.Errorf("the chart's appVersion %q starts with v: the images are tagged without it", appVersion)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if !slices.Contains(d.Platforms, p) {
			t.Errorf("the image is not built for %s (platforms %q)", p, d.Platforms)
		}
	}
	hook := strings.Join(g.Before.Hooks, "\n")
	for _, want := range []string{"helm package charts/schemagate", "--version {{ .Version }}", "--app-version {{ .Version }}"} {
		if !strings.Contains(hook, want) {
			t.Errorf("before hooks %q: no %q (the chart at the release's version runs the release's image)", g.Before.Hooks, want)
		}
	}
	if len(g.Publishers) != 1 {
		t.Fatalf("%d publishers, want the chart's", len(g.Publishers))
	}
	m := regexp.MustCompile(`helm push \S+ oci://(\S+)`).FindStringSubmatch(g.Publishers[0].Cmd)
	if m == nil {
		t.Fatalf("the publisher %q does not helm push the chart", g.Publishers[0].Cmd)
	}
	if chartRef := m[1] + "/schemagate"; chartRef == repository {
		t.Errorf("the chart would be pushed to %s, over the image", chartRef)
	}
}

// The release builds its binaries as the Dockerfile and `make build` do, and the image around
// those binaries: the Dockerfile's final stage copies the binary from the stage "build", at
// the path where GoReleaser's build context holds it (<os>/<arch>/<binary>), and the release
// names that context "build", which puts it in that stage's place.
func TestReleaseImageRunsTheReleasedBinary(t *testing.T) {
	g := readGoreleaser(t)
	b, d := g.Builds[0], g.DockersV2[0]
	if b.Main != "./cmd/schemagate" || b.Binary != "schemagate" {
		t.Errorf("build main %q binary %q, want ./cmd/schemagate and schemagate", b.Main, b.Binary)
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") {
		t.Errorf("build env %q flags %q: want CGO_ENABLED=0 and -trimpath, as the Dockerfile builds", b.Env, b.Flags)
	}
	ld := strings.Join(strings.Fields(strings.Join(b.Ldflags, " ")), " ")
	if !strings.Contains(" "+ld+" ", " -s -w ") || !strings.Contains(ld, "-X github.com/schemagate/schemagate.Version=v{{ .Version }}") {
		t.Errorf("ldflags %q: want -s -w -X github.com/schemagate/schemagate.Version=v{{ .Version }}", b.Ldflags)
	}
	for _, want := range [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}} {
		if !slices.Contains(b.Goos, want[0]) || !slices.Contains(b.Goarch, want[1]) {
			t.Errorf("no %s/%s binary (goos %q, goarch %q)", want[0], want[1], b.Goos, b.Goarch)
		}
	}
	if d.Dockerfile != "Dockerfile" || !slices.Contains(d.IDs, b.ID) {
		t.Errorf("dockers_v2 builds %q from builds %q; want the Dockerfile around build %q", d.Dockerfile, d.IDs, b.ID)
	}
	if !slices.Contains(d.Flags, "--build-context=build=.") {
		t.Errorf("dockers_v2 flags %q: want --build-context=build=., GoReleaser's context in place of the build stage", d.Flags)
	}
	if d.BuildArgs["VERSION"] != "v{{ .Version }}" {
		t.Errorf("dockers_v2 VERSION build arg %q, want v{{ .Version }}, the binaries' version", d.BuildArgs["VERSION"])
	}

	_, stages := parseDockerfile(t, "../Dockerfile")
	if !strings.HasSuffix(stages[0][0].args, " AS build") {
		t.Fatalf("the first stage is %q, not the stage \"build\" the release replaces", stages[0][0].args)
	}
	_, cp := find(stages[1], "COPY", "--from=build ")
	src := strings.Fields(cp.args)
	if len(src) != 3 {
		t.Fatalf("the final stage copies nothing from the build stage")
	}
	for _, platform := range d.Platforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		got := strings.NewReplacer("${TARGETOS}", goos, "${TARGETARCH}", goarch).Replace(src[1])
		if want := "/" + platform + "/" + b.Binary; got != want {
			t.Errorf("for %s the final stage copies %s; GoReleaser's context holds the binary at %s", platform, got, want)
		}
	}
	// The build stage writes its own binary where the final stage takes it from.
	_, argv := dockerfileBuild(t, map[string]string{"TARGETOS": "${TARGETOS}", "TARGETARCH": "${TARGETARCH}", "VERSION": "${VERSION}"})
	if out := argv[slices.Index(argv, "-o")+1]; out != src[1] {
		t.Errorf("the build stage writes %s, the final stage copies %s", out, src[1])
	}
}

// `make image` builds the name and tag a release publishes, and the workflows run the
// GoReleaser the Makefile names.
func TestMakeImageIsTheReleasedImage(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	variable := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*[?:]?=\s*(.*)$`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("the Makefile sets no %s", name)
		}
		return strings.TrimSpace(m[1])
	}
	repository, _ := chartImage(t)
	if got := variable("IMAGE"); got != repository {
		t.Errorf("make image builds %s; the chart pulls %s", got, repository)
	}
	if got := variable("IMAGE_TAG"); got != "$(patsubst v%,%,$(VERSION))" {
		t.Errorf("IMAGE_TAG = %s: want the version without its v, as the release tags the image", got)
	}
	if !regexp.MustCompile(`(?m)^\t\$\(ENGINE\) build .* -t \$\(IMAGE\):\$\(IMAGE_TAG\) \.$`).MatchString(mk) {
		t.Error("make image does not tag $(IMAGE):$(IMAGE_TAG)")
	}
	version := variable("GORELEASER_VERSION")
	for _, wf := range []string{"ci.yml", "release.yml"} {
		w, err := os.ReadFile(filepath.Join("../.github/workflows", wf))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*version:\s*(\S+)`).FindAllStringSubmatch(string(w), -1) {
			if m[1] != version {
				t.Errorf("%s runs GoReleaser %s; the Makefile's GORELEASER_VERSION is %s", wf, m[1], version)
			}
		}
	}
}

// imageRef is a reference to an image named schemagate: a registry host, a path, an optional
// tag or digest.
var imageRef = regexp.MustCompile(`\b((?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?(?:/[a-z0-9._-]+)*/schemagate)(?::([^\s"'\x60)\],]+)|@sha256:[0-9a-f]{64})?`)

// A mirror of the image in an example: the same repository on a documentation domain.
var mirror = regexp.MustCompile(`^[a-z0-9.-]+\.example(?::\d+)?/schemagate/schemagate$`)

// Every image reference of the documentation, the examples, the chart and the build names the
// one image a release publishes, at a tag it pushes (or a variable for one).
func TestOneImageReferenceEverywhere(t *testing.T) {
	repository, _ := chartImage(t)
	chartRepo := "ghcr.io/schemagate/charts/schemagate"
	// A tag the release pushes, the placeholders the pages write for one, or a variable.
	tag := regexp.MustCompile(`^(latest|\d+|\d+\.\d+|\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|X|X\.Y|X\.Y\.Z)$|[$<{]`)
	var files []string
	for _, f := range []string{"../README.md", "../CHANGELOG.md", "../Makefile", "../Dockerfile", "../.goreleaser.yaml"} {
		files = append(files, f)
	}
	for _, dir := range []string{"../docs", "../examples", "../charts", "../.github"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, loc := range imageRef.FindAllStringSubmatchIndex(line, -1) {
				m := []string{line[loc[0]:loc[1]], line[loc[2]:loc[3]], ""}
				if loc[4] >= 0 {
					m[2] = line[loc[4]:loc[5]]
				}
				// Not an image: a web address (the repository, its files), the module
				// path, or a prefix of a longer path (oci://ghcr.io/schemagate/charts).
				before := line[:loc[0]]
				if strings.HasSuffix(before, "http://") || strings.HasSuffix(before, "https://") ||
					strings.HasPrefix(m[1], "github.com/") || loc[3] < len(line) && line[loc[3]] == '/' {
					continue
				}
				seen++
				where := strings.TrimPrefix(path, "../")
				switch {
				case m[1] == chartRepo, mirror.MatchString(m[1]):
				case m[1] != repository:
					t.Errorf("%s:%d: image %s; the release publishes %s", where, i+1, m[0], repository)
				case m[2] != "" && !tag.MatchString(m[2]):
					t.Errorf("%s:%d: tag %q of %s is none the release pushes (X.Y.Z, X.Y, X, latest)", where, i+1, m[2], m[1])
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("found %d references to the image; the reader has lost them", seen)
	}
}
