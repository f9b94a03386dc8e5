// Package deploy tests what ships next to the binary: the Helm chart in charts/schemagate, the
// example app chart in examples/chart-app, and the Swarm and Compose files in examples/. It
// renders the charts with Helm's own packages, decodes every object strictly into the
// Kubernetes API types, and loads the Compose files with compose-go; nothing needs a cluster,
// a Docker engine or the network.
package deploy
