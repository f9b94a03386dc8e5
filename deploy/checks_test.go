package deploy

import (
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// fakePassword is the password of fakeURL: a database URL a careless chart could leak.
const (
	fakePassword = "Tr0ub4dor-s3cret"
	fakeURL      = "postgres://app:" + fakePassword + "@db.example:5432/app?sslmode=require"
)

// checkRendering runs the checks every rendering of every chart must pass.
func checkRendering(t *testing.T, r *rendering) {
	t.Helper()
	checkNames(t, r)
	checkLabels(t, r)
	checkRestricted(t, r)
	checkNoSecretLiterals(t, r)
	checkServicesSelectOnlyTheirPods(t, r)
}

// checkNames: every name is one the API server accepts (a Job's name also becomes a label
// value, so it must fit in 63 characters).
func checkNames(t *testing.T, r *rendering) {
	t.Helper()
	for _, o := range r.objects {
		var errs []string
		switch o.kind {
		case "v1/Service":
			errs = validation.IsDNS1035Label(o.name)
		case "batch/v1/Job":
			errs = validation.IsDNS1123Label(o.name)
		default:
			errs = validation.IsDNS1123Subdomain(o.name)
		}
		if len(errs) > 0 {
			t.Errorf("%s %q: invalid name: %v", o.kind, o.name, errs)
		}
	}
}

// The labels every object carries (https://helm.sh/docs/chart_best_practices/labels/).
var standardLabels = []string{
	"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
	"app.kubernetes.io/managed-by", "helm.sh/chart",
}

// checkLabels: every object, and every pod template, has the standard labels, with the
// release's instance, Helm as manager, and the chart and version of the chart that rendered it.
func checkLabels(t *testing.T, r *rendering) {
	t.Helper()
	for _, o := range r.objects {
		meta := objectMeta(o)
		want := chartOf(t, o.source)
		check := func(where string, l map[string]string) {
			for _, k := range standardLabels {
				if l[k] == "" {
					t.Errorf("%s: label %s missing in %v", where, k, l)
				}
			}
			for k, v := range l {
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
					t.Errorf("%s: label %s=%q: %v", where, k, v, errs)
				}
			}
			for k, v := range map[string]string{
				"app.kubernetes.io/instance":   releaseName,
				"app.kubernetes.io/managed-by": "Helm",
				"helm.sh/chart":                want.Name + "-" + want.Version,
				"app.kubernetes.io/version":    want.AppVersion,
			} {
				if l[k] != v {
					t.Errorf("%s: label %s=%q, want %q", where, k, l[k], v)
				}
			}
			wantName := want.Name
			if override, _ := r.chartValues(want.Name)["nameOverride"].(string); override != "" {
				wantName = override
			}
			if name := l["app.kubernetes.io/name"]; name != wantName && name != "schemagate" {
				t.Errorf("%s: label app.kubernetes.io/name=%q, want %q", where, name, wantName)
			}
		}
		check(o.kind+" "+o.name, meta.Labels)
		if tmpl := podTemplate(o); tmpl != nil {
			check(o.kind+" "+o.name+" pod template", tmpl.Labels)
		}
	}
}

// chartOf returns the metadata of the chart a template path belongs to
// ("chart-app/charts/schemagate/templates/x.yaml" belongs to schemagate).
func chartOf(t *testing.T, source string) chartMeta {
	t.Helper()
	parts := strings.Split(source, "/")
	name := parts[0]
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "charts" {
			name = parts[i+1]
		}
	}
	dir := map[string]string{"schemagate": chartDir, "chart-app": exampleDir}[name]
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return chartMeta{ch.Metadata.Name, ch.Metadata.Version, ch.Metadata.AppVersion}
}

type chartMeta struct{ Name, Version, AppVersion string }

// chartValues returns the values the chart called name saw: the top-level values, or those of
// a dependency.
func (r *rendering) chartValues(name string) map[string]any {
	if sub, ok := r.values[name].(map[string]any); ok {
		return sub
	}
	return r.values
}

func objectMeta(o object) metav1.ObjectMeta {
	if a, ok := o.value.(metav1.ObjectMetaAccessor); ok {
		if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return *m
		}
	}
	return metav1.ObjectMeta{}
}

func podTemplate(o object) *corev1.PodTemplateSpec {
	switch v := o.value.(type) {
	case *batchv1.Job:
		return &v.Spec.Template
	case *appsv1.Deployment:
		return &v.Spec.Template
	}
	return nil
}

// checkRestricted: every pod meets the "restricted" Pod Security Standard.
func checkRestricted(t *testing.T, r *rendering) {
	t.Helper()
	for where, spec := range r.podSpecs() {
		for _, v := range restrictedViolations(spec) {
			t.Errorf("%s: restricted: %s", where, v)
		}
	}
}

// A URL with a password in it: scheme://user:password@host.
var credentialURL = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`)

// Variables whose value is a secret and must come from a Secret.
var secretName = regexp.MustCompile(`(?i)(DATABASE_URL|PASSWORD|SECRET|TOKEN)$`)

// checkNoSecretLiterals: the charts render no Secret or ConfigMap of their own, no variable
// that holds a secret has a literal value, and no literal, argument or command holds a URL with
// a password.
func checkNoSecretLiterals(t *testing.T, r *rendering) {
	t.Helper()
	if strings.Contains(r.text, fakePassword) {
		t.Errorf("the rendering contains the password %q", fakePassword)
	}
	for _, o := range r.objects {
		if o.kind == "v1/Secret" || o.kind == "v1/ConfigMap" {
			t.Errorf("%s %s: the charts must not render Secrets or ConfigMaps", o.kind, o.name)
		}
	}
	for where, spec := range r.podSpecs() {
		for _, c := range containers(spec) {
			for _, e := range c.Env {
				if secretName.MatchString(e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s, container %s: %s must come from a secretKeyRef, got %+v", where, c.Name, e.Name, e)
				}
				if credentialURL.MatchString(e.Value) {
					t.Errorf("%s, container %s: %s holds a URL with a password", where, c.Name, e.Name)
				}
			}
			for _, a := range append(append([]string{}, c.Command...), c.Args...) {
				if credentialURL.MatchString(a) {
					t.Errorf("%s, container %s: an argument holds a URL with a password", where, c.Name)
				}
			}
		}
	}
}

// checkServicesSelectOnlyTheirPods: a Service selects the pods of a Deployment and no other
// rendered pod (a helm test Pod that an app's Service selected would get its traffic).
func checkServicesSelectOnlyTheirPods(t *testing.T, r *rendering) {
	t.Helper()
	for _, svc := range all[*corev1.Service](r) {
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s: no selector", svc.Name)
			continue
		}
		selected := 0
		for _, d := range all[*appsv1.Deployment](r) {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				selected++
			}
		}
		if selected == 0 {
			t.Errorf("Service %s: its selector %v matches no Deployment's pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range all[*corev1.Pod](r) {
			if sel.Matches(labels.Set(p.Labels)) {
				t.Errorf("Service %s selects the Pod %s", svc.Name, p.Name)
			}
		}
		for _, j := range all[*batchv1.Job](r) {
			if sel.Matches(labels.Set(j.Spec.Template.Labels)) {
				t.Errorf("Service %s selects the pods of Job %s", svc.Name, j.Name)
			}
		}
	}
}

// checkDatabaseURLFromSecret: the container reads the database URL from the Secret, as a
// variable (secretKeyRef) or as a file (a mounted secret volume), never from a literal.
func checkDatabaseURLFromSecret(t *testing.T, spec corev1.PodSpec, c corev1.Container, secret, key string) {
	t.Helper()
	if e, ok := env(c, "SCHEMAGATE_DATABASE_URL"); ok {
		ref := e.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != secret || ref.SecretKeyRef.Key != key {
			t.Errorf("container %s: SCHEMAGATE_DATABASE_URL = %+v, want secretKeyRef %s/%s", c.Name, e, secret, key)
		}
		if _, ok := env(c, "SCHEMAGATE_DATABASE_URL_FILE"); ok {
			t.Errorf("container %s: both SCHEMAGATE_DATABASE_URL and SCHEMAGATE_DATABASE_URL_FILE", c.Name)
		}
		return
	}
	path := envValue(t, c, "SCHEMAGATE_DATABASE_URL_FILE")
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("container %s: the secret mount %s is writable", c.Name, m.MountPath)
		}
		file := strings.TrimPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.Secret == nil || v.Secret.SecretName != secret {
				t.Fatalf("container %s: %s is on volume %s = %+v, want the Secret %s", c.Name, path, v.Name, v.VolumeSource, secret)
			}
			for _, item := range v.Secret.Items {
				if item.Path == file && item.Key == key {
					return
				}
			}
			t.Fatalf("container %s: the Secret volume %s has no item %s -> %s: %+v", c.Name, v.Name, key, file, v.Secret.Items)
		}
		t.Fatalf("container %s: no volume %s", c.Name, m.Name)
	}
	t.Fatalf("container %s: SCHEMAGATE_DATABASE_URL_FILE=%s is on no volume mount", c.Name, path)
}
