package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// A database proxy beside schemagate, as the Job and the test Pod need it.
const proxySidecar = `
sidecars:
  - name: cloud-sql-proxy
    image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1
    args: [--private-ip, --port=5432, "project:region:instance"]
    securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
extraInitContainers:
  - name: fetch-ca
    image: registry.example/tools:1
    command: [cp, /ca.crt, /certs/]
    securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
`

// The sidecars are native sidecars, first among the init containers: they start before
// schemagate and stop when it is done, so the Job completes; extraInitContainers follow them,
// then the copy of the migrations.
func TestJobSidecarsAreNativeSidecars(t *testing.T) {
	for _, mode := range []string{"job", "helmHook"} {
		r := mustRender(t, chartDir, values(t, base, "mode: "+mode, proxySidecar,
			"migrations: {fromImage: {enabled: true, image: {repository: app, tag: '1'}}}"))
		checkRendering(t, r)
		specs := r.podSpecs()
		if len(specs) != 2 {
			t.Fatalf("%s: pods %v, want the Job's and the test Pod's", mode, r.kinds())
		}
		for where, spec := range specs {
			want := []string{"cloud-sql-proxy", "fetch-ca", "schemagate-copy-migrations"}
			var got []string
			for _, c := range spec.InitContainers {
				got = append(got, c.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: init containers %v, want %v", mode, where, got, want)
			}
			proxy := spec.InitContainers[0]
			if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("%s %s: the proxy's restartPolicy is %v, want Always (a native sidecar)", mode, where, proxy.RestartPolicy)
			}
			for _, c := range spec.InitContainers[1:] {
				if c.RestartPolicy != nil {
					t.Errorf("%s %s: init container %s has restartPolicy %v", mode, where, c.Name, *c.RestartPolicy)
				}
			}
			if len(spec.Containers) != 1 || spec.Containers[0].Name != "schemagate" {
				t.Errorf("%s %s: containers %v, want schemagate alone (a regular sidecar keeps the Job from completing)", mode, where, containerNames(spec))
			}
		}
	}
	// The values are not changed by rendering: a second rendering is the same.
	v := values(t, base, proxySidecar)
	a, b := mustRender(t, chartDir, v), mustRender(t, chartDir, v)
	if a.text != b.text {
		t.Error("rendering the same values twice gave two renderings")
	}
}

// Scheduling values reach the Job's pod and the test Pod.
func TestOwnPodsScheduling(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, `
priorityClassName: db-migrations
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: schemagate}}}]`))
	for where, spec := range r.podSpecs() {
		if spec.PriorityClassName != "db-migrations" {
			t.Errorf("%s: priorityClassName %q", where, spec.PriorityClassName)
		}
		if len(spec.TopologySpreadConstraints) != 1 || spec.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" {
			t.Errorf("%s: topologySpreadConstraints %+v", where, spec.TopologySpreadConstraints)
		}
	}
}

// commonAnnotations go on every object the chart renders, not on the Job's pod; the Job's own
// annotations and the hook annotations win over them.
func TestCommonAnnotations(t *testing.T) {
	common := "commonAnnotations: {team: db, helm.sh/hook-weight: '99', owner: platform}"
	for _, mode := range []string{"job", "helmHook"} {
		r := mustRender(t, chartDir, values(t, base, "mode: "+mode, common, "job: {annotations: {owner: migrations}}"))
		if len(r.objects) != 3 {
			t.Fatalf("%s: %v", mode, r.kinds())
		}
		for _, o := range r.objects {
			a := objectMeta(o).Annotations
			if a["team"] != "db" {
				t.Errorf("%s: %s %s annotations %v, want team: db", mode, o.kind, o.name, a)
			}
			if w := a["helm.sh/hook-weight"]; mode == "helmHook" && o.kind != "v1/Pod" && w == "99" {
				t.Errorf("%s: %s %s: commonAnnotations replaced the hook weight", mode, o.kind, o.name)
			}
			if o.kind == "v1/Pod" && a["helm.sh/hook"] != "test" {
				t.Errorf("%s: the test Pod's annotations %v lost helm.sh/hook: test", mode, a)
			}
		}
		job := one[*batchv1.Job](t, r)
		if job.Annotations["owner"] != "migrations" {
			t.Errorf("%s: Job annotation owner=%q, want job.annotations to win", mode, job.Annotations["owner"])
		}
		if _, ok := job.Spec.Template.Annotations["team"]; ok {
			t.Errorf("%s: commonAnnotations reached the Job's pod (podAnnotations is for that)", mode)
		}
	}
}

// global.imageRegistry takes the place of every image's registry.
func TestGlobalImageRegistry(t *testing.T) {
	sg, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	tag := sg.Metadata.AppVersion
	for _, tc := range []struct {
		values     string
		schemagate string
		migrations string
	}{
		{"global: {imageRegistry: mirror.example}",
			"mirror.example/schemagate/schemagate:" + tag, "mirror.example/team/app:2.4.0"},
		{"{global: {imageRegistry: 'mirror.example:5000/'}, image: {registry: registry.example, repository: schemagate/schemagate}}",
			"mirror.example:5000/schemagate/schemagate:" + tag, "mirror.example:5000/team/app:2.4.0"},
		{"{global: {imageRegistry: mirror.example}, image: {repository: localhost/schemagate}}",
			"mirror.example/schemagate:" + tag, "mirror.example/team/app:2.4.0"},
		{"image: {registry: registry.example, repository: schemagate/schemagate}",
			"registry.example/schemagate/schemagate:" + tag, "registry.example/team/app:2.4.0"},
	} {
		r := mustRender(t, chartDir, values(t, base, tc.values,
			"migrations: {fromImage: {enabled: true, image: {registry: registry.example, repository: team/app, tag: '2.4.0'}}}"))
		for where, spec := range r.podSpecs() {
			if got := container(t, spec, "schemagate").Image; got != tc.schemagate {
				t.Errorf("%s, %s: schemagate image %q, want %q", tc.values, where, got, tc.schemagate)
			}
			if got := container(t, spec, "schemagate-copy-migrations").Image; got != tc.migrations {
				t.Errorf("%s, %s: migrations image %q, want %q", tc.values, where, got, tc.migrations)
			}
		}
	}
	// From a parent chart, whose globals reach the dependency.
	spec := one[*appsv1.Deployment](t, mustRender(t, example(t), values(t, "global: {imageRegistry: mirror.example}"))).Spec.Template.Spec
	if got, want := container(t, spec, "schemagate").Image, "mirror.example/schemagate/schemagate:"+tag; got != want {
		t.Errorf("chart-app with global.imageRegistry: schemagate image %q, want %q", got, want)
	}
}

// On OpenShift the chart's default user and group are left out of the security contexts (the
// restricted-v2 SCC assigns them); everything else of the restricted profile stays.
func TestOpenShiftSecurityContexts(t *testing.T) {
	const openshiftAPI = "security.openshift.io/v1"
	type ids struct{ user, group, fsGroup bool }
	idsOf := func(spec corev1.PodSpec) (pod ids, containers map[string]ids) {
		if p := spec.SecurityContext; p != nil {
			pod = ids{p.RunAsUser != nil, p.RunAsGroup != nil, p.FSGroup != nil}
		}
		containers = map[string]ids{}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if s := c.SecurityContext; s != nil {
				containers[c.Name] = ids{s.RunAsUser != nil, s.RunAsGroup != nil, false}
			} else {
				containers[c.Name] = ids{}
			}
		}
		return pod, containers
	}
	fromImage := "migrations: {fromImage: {enabled: true, image: {repository: app, tag: '1'}}}"
	for _, tc := range []struct {
		name   string
		dir    string
		values []string
		apis   []string
		adapt  bool
	}{
		{"auto, not OpenShift", chartDir, []string{base, fromImage}, nil, false},
		{"auto, OpenShift", chartDir, []string{base, fromImage}, []string{openshiftAPI}, true},
		{"force", chartDir, []string{base, fromImage, "global: {compatibility: {openshift: {adaptSecurityContext: force}}}"}, nil, true},
		{"disabled, OpenShift", chartDir, []string{base, fromImage, "global: {compatibility: {openshift: {adaptSecurityContext: disabled}}}"}, []string{openshiftAPI}, false},
		{"snippets, OpenShift", "", nil, []string{openshiftAPI}, true},
		{"snippets, not OpenShift", "", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = example(t)
			}
			ch, err := loader.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			r, err := renderChart(ch, values(t, tc.values...), kubeVersion, tc.apis...)
			if err != nil {
				t.Fatal(err)
			}
			checkRestricted(t, r)
			for where, spec := range r.podSpecs() {
				pod, cs := idsOf(spec)
				if tc.dir != "" && (pod.user || pod.group || pod.fsGroup) == tc.adapt {
					t.Errorf("%s: pod security context sets runAsUser %v, runAsGroup %v, fsGroup %v; adapted for OpenShift: %v",
						where, pod.user, pod.group, pod.fsGroup, tc.adapt)
				}
				for name, c := range cs {
					if !strings.HasPrefix(name, "schemagate") {
						continue
					}
					if (c.user || c.group) == tc.adapt {
						t.Errorf("%s, container %s: runAsUser %v, runAsGroup %v; adapted for OpenShift: %v", where, name, c.user, c.group, tc.adapt)
					}
				}
			}
		})
	}
	// A user ID set on purpose stays.
	r := mustRender(t, chartDir, values(t, base, "global: {compatibility: {openshift: {adaptSecurityContext: force}}}",
		"podSecurityContext: {runAsNonRoot: true, runAsUser: 1000680000, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}"))
	p := one[*batchv1.Job](t, r).Spec.Template.Spec.SecurityContext
	if p == nil || p.RunAsUser == nil || *p.RunAsUser != 1000680000 || p.FSGroup != nil {
		t.Errorf("force with runAsUser 1000680000: pod security context %+v, want that user and no default fsGroup", p)
	}
	if _, err := render(chartDir, values(t, base, "global: {compatibility: {openshift: {adaptSecurityContext: maybe}}}")); err == nil {
		t.Error("adaptSecurityContext: maybe was accepted")
	}
}

// The chart installs where the Job can run (1.26, podFailurePolicy); what needs native
// sidecars refuses older clusters with the reason, and nothing else does.
func TestKubernetesVersions(t *testing.T) {
	sg, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	constraint, err := semver.NewConstraint(sg.Metadata.KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for v, ok := range map[string]bool{"1.25.9": false, "1.26.0": true, "1.28.3-eks-1a2b3c": true, "1.33.1": true} {
		if constraint.Check(semver.MustParse(v)) != ok {
			t.Errorf("kubeVersion %q admits %s: %v, want %v", sg.Metadata.KubeVersion, v, !ok, ok)
		}
	}
	renderAt := func(dir, kube string, vals ...string) error {
		t.Helper()
		ch, err := loader.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = renderChart(ch, values(t, vals...), kube)
		return err
	}
	for _, tc := range []struct {
		name   string
		dir    string
		values []string
		old    bool // renders on 1.28
	}{
		{"job", chartDir, []string{base}, true},
		{"helmHook", chartDir, []string{base, "mode: helmHook"}, true},
		{"job with sidecars", chartDir, []string{base, proxySidecar}, false},
		{"initContainer", "", []string{"gate: initContainer"}, true},
		{"nativeSidecar", "", nil, false},
	} {
		dir := tc.dir
		if dir == "" {
			dir = example(t)
		}
		if err := renderAt(dir, "v1.29.0", tc.values...); err != nil {
			t.Errorf("%s on 1.29: %v", tc.name, err)
		}
		err := renderAt(dir, "v1.28.3-eks-1a2b3c", tc.values...)
		switch {
		case tc.old && err != nil:
			t.Errorf("%s on 1.28: %v", tc.name, err)
		case !tc.old && (err == nil || !strings.Contains(err.Error(), "Kubernetes has from 1.29")):
			t.Errorf("%s on 1.28: %v, want a refusal that says why", tc.name, err)
		}
	}
}
