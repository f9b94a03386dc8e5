package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/getter"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The charts under test, relative to this module, and the release they are rendered as.
const (
	chartDir    = "../charts/schemagate"
	exampleDir  = "../examples/chart-app"
	releaseName = "shop"
	namespace   = "prod"
)

// object is one rendered Kubernetes object, decoded strictly into its API type.
type object struct {
	source string // the template it came from
	kind   string // apiVersion/kind, as in "batch/v1/Job"
	name   string
	value  any // *batchv1.Job, *corev1.Pod, ...
}

// rendering is everything a chart rendered with one set of values.
type rendering struct {
	objects []object
	notes   string
	text    string           // every rendered byte, NOTES included
	values  chartutil.Values // the values the templates saw
}

// newObject maps apiVersion/kind to the Go type an object must decode into. A kind that is not
// here is an error: the test must know every kind the charts render.
var newObject = map[string]func() any{
	"batch/v1/Job":             func() any { return &batchv1.Job{} },
	"v1/Pod":                   func() any { return &corev1.Pod{} },
	"v1/Service":               func() any { return &corev1.Service{} },
	"v1/ServiceAccount":        func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":             func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                func() any { return &corev1.Secret{} },
	"apps/v1/Deployment":       func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":      func() any { return &appsv1.StatefulSet{} },
	"v1/PersistentVolumeClaim": func() any { return &corev1.PersistentVolumeClaim{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any {
		return &unstructured.Unstructured{}
	},
}

// values parses YAML documents of chart values, each merged over the ones before it, as
// `helm template -f a.yaml -f b.yaml` does.
func values(t testing.TB, docs ...string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, doc := range docs {
		v, err := chartutil.ReadValues([]byte(doc))
		if err != nil {
			t.Fatalf("values %q: %v", doc, err)
		}
		out = chartutil.MergeTables(v.AsMap(), out)
	}
	return out
}

// kubeVersion is the Kubernetes version the charts are rendered for, as `helm template
// --kube-version` would: one with native sidecars.
const kubeVersion = "v1.33.0"

// render renders the chart at dir as `helm template` does: dependencies processed, values
// coalesced and checked against values.schema.json, templates executed by Helm's engine.
func render(dir string, vals map[string]any) (*rendering, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return renderChart(ch, vals, kubeVersion)
}

// renderChart renders a loaded chart for a cluster of the Kubernetes version kube that serves
// the default API versions and apis. A missing value is an error, as with `helm lint --strict`:
// the charts of this repository never read one.
func renderChart(ch *chart.Chart, vals map[string]any, kube string, apis ...string) (*rendering, error) {
	return renderWith(ch, vals, renderOptions{kube: kube, apis: apis, strict: true})
}

// renderOptions are what renderWith renders for.
type renderOptions struct {
	kube   string   // the cluster's Kubernetes version
	apis   []string // API versions it serves besides the default ones
	strict bool     // a missing value is an error (helm install renders it as empty)
}

func renderWith(ch *chart.Chart, vals map[string]any, o renderOptions) (*rendering, error) {
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(o.kube)
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *kv
	caps.APIVersions = append(slices.Clone(caps.APIVersions), o.apis...)
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, vals, opts, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: o.strict}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	r, err := decodeAll(files)
	if err != nil {
		return nil, err
	}
	r.values, _ = top.Table("Values")
	return r, nil
}

// decodeAll splits the rendered files into objects and decodes each strictly.
func decodeAll(files map[string]string) (*rendering, error) {
	r := &rendering{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var all strings.Builder
	for _, name := range names {
		all.WriteString(files[name])
		if strings.HasSuffix(name, "NOTES.txt") {
			if strings.Count(name, "/charts/") == 0 {
				r.notes = files[name]
			}
			continue
		}
		for _, doc := range documentSeparator.Split(files[name], -1) {
			if blank(doc) {
				continue
			}
			obj, err := decode(name, doc)
			if err != nil {
				return nil, err
			}
			r.objects = append(r.objects, obj)
		}
	}
	r.text = all.String()
	return r, nil
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// blank reports whether a YAML document holds nothing but comments and white space.
func blank(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decode turns one YAML document into its API type, failing on duplicate keys, unknown fields
// and values of the wrong type (an unquoted number where the API wants a string).
func decode(source, doc string) (object, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return object{}, fmt.Errorf("%s: %w\n%s", source, err, doc)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return object{}, fmt.Errorf("%s: %w", source, err)
	}
	kind := head.APIVersion + "/" + head.Kind
	mk, ok := newObject[kind]
	if !ok {
		return object{}, fmt.Errorf("%s: unexpected kind %s", source, kind)
	}
	v := mk()
	if u, ok := v.(*unstructured.Unstructured); ok {
		err = u.UnmarshalJSON(js)
	} else {
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		return object{}, fmt.Errorf("%s: %s %q: %w\n%s", source, kind, head.Metadata.Name, err, doc)
	}
	return object{source: source, kind: kind, name: head.Metadata.Name, value: v}, nil
}

// mustRender renders and fails the test on any error.
func mustRender(t testing.TB, dir string, vals map[string]any) *rendering {
	t.Helper()
	r, err := render(dir, vals)
	if err != nil {
		t.Fatalf("render %s: %v", dir, err)
	}
	return r
}

// all returns the rendered objects of type T.
func all[T any](r *rendering) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.value.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the only rendered object of type T.
func one[T any](t testing.TB, r *rendering) T {
	t.Helper()
	objs := all[T](r)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("rendered %d objects of type %T, want 1; objects: %v", len(objs), zero, r.kinds())
	}
	return objs[0]
}

func (r *rendering) kinds() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.kind+" "+o.name)
	}
	return out
}

// exampleChart is the example app chart with its schemagate dependency built, as
// `helm dependency build` does, in a copy of the two charts (the test never writes into the
// source tree). It is built once per test binary.
var exampleChart = struct {
	dir string
	err error
}{}

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "schemagate-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exampleChart.dir, exampleChart.err = buildExample(tmp)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// buildExample copies charts/schemagate and examples/chart-app under root, keeping their
// relative places (the example depends on file://../../charts/schemagate), and packages the
// dependency into the example's charts/ with Helm's downloader, offline.
func buildExample(root string) (string, error) {
	for _, dir := range []string{chartDir, exampleDir} {
		if err := copyTree(dir, filepath.Join(root, strings.TrimPrefix(dir, "../"))); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(root, strings.TrimPrefix(exampleDir, "../"))
	os.RemoveAll(filepath.Join(dir, "charts"))
	os.Remove(filepath.Join(dir, "Chart.lock"))
	m := &downloader.Manager{
		Out:              io.Discard,
		ChartPath:        dir,
		SkipUpdate:       true,
		Getters:          getter.Providers{},
		RepositoryConfig: filepath.Join(root, "repositories.yaml"),
		RepositoryCache:  filepath.Join(root, "repository-cache"),
	}
	if err := m.Update(); err != nil {
		return "", fmt.Errorf("helm dependency update %s: %w", exampleDir, err)
	}
	return dir, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// example returns the directory of the built example chart.
func example(t testing.TB) string {
	t.Helper()
	if exampleChart.err != nil {
		t.Fatal(exampleChart.err)
	}
	return exampleChart.dir
}

// Everything below inspects containers and pod specs.

// podSpecs returns every pod spec a rendering holds: Jobs', Deployments' and Pods'.
func (r *rendering) podSpecs() map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for _, o := range r.objects {
		switch v := o.value.(type) {
		case *batchv1.Job:
			out["Job "+o.name] = v.Spec.Template.Spec
		case *appsv1.Deployment:
			out["Deployment "+o.name] = v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			out["StatefulSet "+o.name] = v.Spec.Template.Spec
		case *corev1.Pod:
			out["Pod "+o.name] = v.Spec
		}
	}
	return out
}

// containers returns the init containers (native sidecars included) and containers of a spec.
func containers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// container returns the container called name.
func container(t testing.TB, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range containers(spec) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q among %v", name, containerNames(spec))
	return corev1.Container{}
}

func containerNames(spec corev1.PodSpec) []string {
	var out []string
	for _, c := range containers(spec) {
		out = append(out, c.Name)
	}
	return out
}

// env returns the container's variable called name, and whether it has one.
func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// envValue returns the literal value of a variable, failing when it is missing or not literal.
func envValue(t testing.TB, c corev1.Container, name string) string {
	t.Helper()
	e, ok := env(c, name)
	if !ok {
		t.Fatalf("container %s: no %s in %v", c.Name, name, envNames(c))
	}
	if e.ValueFrom != nil {
		t.Fatalf("container %s: %s comes from %+v, want a literal", c.Name, name, e.ValueFrom)
	}
	return e.Value
}

func envNames(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}
