package raft

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/argon2"
)

// protocolVersion names the members' protocol (hellos, watches, bootstrap rules, key
// derivation) and goes into the key: members of releases that speak another version derive
// another key and refuse each other at the handshake, rather than misreading each other.
// v2: watches are streams, hellos carry the configuration. v3: the key is derived with argon2id.
// v4: watchers acknowledge every view and show their presence entry on the watch; fleet asks.
const protocolVersion = "schemagate raft transport v4"

// The key is derived with argon2id at OWASP's minimum for it: 19 MiB, 2 passes, 1 lane. The
// public key is no secret (every peer that connects receives the certificate) and neither is
// the cluster name (/status shows it), so whoever connects once can test guesses at the secret
// offline: each then costs that memory and time. A member derives once, as it starts (about
// 35 ms; docs/raft.md says how it was measured).
const (
	kdfPasses  = 2
	kdfMemory  = 19 * 1024 // KiB
	kdfThreads = 1
)

// credentials is the one key pair every member derives from the shared secret and the cluster
// name: a peer proves it knows the secret by completing a TLS 1.3 handshake with it. A peer of
// another cluster (another lock namespace or migration set) derives another key and is refused
// too.
type credentials struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
}

func deriveCredentials(secret []byte, cluster string) (*credentials, error) {
	priv := ed25519.NewKeyFromSeed(deriveSeed(secret, cluster))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "schemagate raft member"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	return &credentials{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv},
		pub: priv.Public().(ed25519.PublicKey)}, nil
}

// deriveSeed is the private key's seed: argon2id of the secret, salted with the protocol
// version and the cluster name (a NUL between them, which neither contains), so that no guess
// is of use against another cluster or release.
func deriveSeed(secret []byte, cluster string) []byte {
	salt := []byte(protocolVersion + "\x00" + cluster)
	return argon2.IDKey(secret, salt, kdfPasses, kdfMemory, kdfThreads, ed25519.SeedSize)
}

// verify accepts only a peer presenting the cluster's key.
func (c *credentials) verify(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("the peer presented no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !bytes.Equal(pub, c.pub) {
		return errors.New("the peer does not hold this cluster's secret")
	}
	return nil
}

func (c *credentials) server() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c.cert},
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: c.verify}
}

func (c *credentials) client() *tls.Config {
	// The chain is not checked against a CA: VerifyPeerCertificate checks the key itself.
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c.cert},
		InsecureSkipVerify: true, VerifyPeerCertificate: c.verify}
}
