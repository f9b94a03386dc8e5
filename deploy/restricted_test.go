package deploy

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// restrictedViolations checks a pod spec against the rules of the Kubernetes "restricted" Pod
// Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
// that a chart's values decide; the baseline rules are part of it. It returns one line per
// broken rule, naming the container.
func restrictedViolations(spec corev1.PodSpec) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	// Baseline: host namespaces, host paths and ports, privileged containers.
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		add("pod: host namespaces (hostNetwork, hostPID, hostIPC) must not be used")
	}
	// Restricted: only these volume types.
	for _, v := range spec.Volumes {
		s := v.VolumeSource
		if s.ConfigMap == nil && s.CSI == nil && s.DownwardAPI == nil && s.EmptyDir == nil &&
			s.Ephemeral == nil && s.PersistentVolumeClaim == nil && s.Projected == nil && s.Secret == nil {
			add("volume %s: type not allowed (configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret)", v.Name)
		}
	}

	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		add("pod: runAsUser must not be 0")
	}
	if psc.SeccompProfile != nil && !allowedSeccomp(psc.SeccompProfile) {
		add("pod: seccompProfile.type %q must be RuntimeDefault or Localhost", psc.SeccompProfile.Type)
	}
	if psc.SELinuxOptions != nil && (psc.SELinuxOptions.User != "" || psc.SELinuxOptions.Role != "") {
		add("pod: seLinuxOptions user and role must be empty")
	}
	for _, s := range psc.Sysctls {
		if !slices.Contains(safeSysctls, s.Name) {
			add("pod: sysctl %s is not in the safe set", s.Name)
		}
	}

	all := append(append(slices.Clone(spec.InitContainers), spec.Containers...), ephemeral(spec)...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		name := "container " + c.Name
		if sc.Privileged != nil && *sc.Privileged {
			add("%s: privileged must not be true", name)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				add("%s: hostPort %d must not be set", name, p.HostPort)
			}
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			add("%s: procMount must be Default", name)
		}
		if sc.SELinuxOptions != nil && (sc.SELinuxOptions.User != "" || sc.SELinuxOptions.Role != "") {
			add("%s: seLinuxOptions user and role must be empty", name)
		}
		// Restricted.
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("%s: allowPrivilegeEscalation must be false", name)
		}
		nonRoot := psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if !nonRoot {
			add("%s: runAsNonRoot must be true (on the container or the pod)", name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add("%s: runAsUser must not be 0", name)
		}
		seccomp := psc.SeccompProfile
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile
		}
		if seccomp == nil || !allowedSeccomp(seccomp) {
			add("%s: seccompProfile must be RuntimeDefault or Localhost (on the container or the pod)", name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			add("%s: capabilities must drop ALL", name)
		}
		if sc.Capabilities != nil {
			for _, cap := range sc.Capabilities.Add {
				if cap != "NET_BIND_SERVICE" {
					add("%s: capability %s must not be added", name, cap)
				}
			}
		}
	}
	return out
}

func allowedSeccomp(p *corev1.SeccompProfile) bool {
	return p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost
}

func ephemeral(spec corev1.PodSpec) []corev1.Container {
	var out []corev1.Container
	for _, e := range spec.EphemeralContainers {
		c := corev1.Container{Name: e.Name, SecurityContext: e.SecurityContext, Ports: e.Ports}
		out = append(out, c)
	}
	return out
}

// The sysctls the baseline profile allows.
var safeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

// The checker itself must catch what it claims to: each case breaks one rule.
func TestRestrictedCheckerCatchesViolations(t *testing.T) {
	yes, no, root := true, false, int64(0)
	good := func() corev1.PodSpec {
		return corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "c",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		}
	}
	if v := restrictedViolations(good()); len(v) != 0 {
		t.Fatalf("a restricted pod spec: %v", v)
	}
	for name, breakIt := range map[string]func(*corev1.PodSpec){
		"privileged":           func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Privileged = &yes },
		"privilege escalation": func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil },
		"root user":            func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.RunAsUser = &root },
		"runAsNonRoot false":   func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.RunAsNonRoot = &no },
		"no seccomp":           func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile = nil },
		"unconfined":           func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile.Type = corev1.SeccompProfileTypeUnconfined },
		"capabilities kept":    func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Capabilities = nil },
		"capability added": func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		},
		"host network": func(s *corev1.PodSpec) { s.HostNetwork = true },
		"host port":    func(s *corev1.PodSpec) { s.Containers[0].Ports = []corev1.ContainerPort{{HostPort: 80}} },
		"hostPath": func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		},
		"init container": func(s *corev1.PodSpec) { s.InitContainers = []corev1.Container{{Name: "i"}} },
	} {
		s := good()
		breakIt(&s)
		if v := restrictedViolations(s); len(v) == 0 {
			t.Errorf("%s: no violation found", name)
		}
	}
}
