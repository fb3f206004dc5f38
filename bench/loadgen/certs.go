package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"runtime"
	"sync"
	"time"
)

// certLine is one line of the gateways file written by `loadgen certs`.
type certLine struct {
	Name        string `json:"name"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	Fingerprint string `json:"fingerprint"`
}

func loadCA(certPath, keyPath string) (*x509.Certificate, any, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("CA certificate or key: no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		key, err = x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("CA key: %w", err)
		}
	}
	return cert, key, nil
}

// issue makes a client certificate for one gateway like modelfleet.enrollment.pki.FleetCA
// does: EC P-256, CN = gateway name, EKU clientAuth, SKI and AKI.
func issue(ca *x509.Certificate, caKey any, name string, validity time.Duration) (certLine, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certLine{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return certLine{}, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return certLine{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certLine{}, err
	}
	fp := sha256.Sum256(der)
	return certLine{
		Name:        name,
		Cert:        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		Key:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Fingerprint: "sha256:" + hex.EncodeToString(fp[:]),
	}, nil
}

// certsMain: `loadgen certs --ca-cert F --ca-key F --count N --prefix gw- --out FILE`
// writes one JSON line per gateway (name, cert PEM, key PEM, fingerprint), in name order.
func certsMain(argv []string) error {
	fs := flag.NewFlagSet("certs", flag.ExitOnError)
	caCert := fs.String("ca-cert", "", "fleet CA certificate (PEM)")
	caKey := fs.String("ca-key", "", "fleet CA key (PEM, PKCS#8 or SEC 1)")
	count := fs.Int("count", 1000, "gateways")
	prefix := fs.String("prefix", "gw-", "name prefix; names are PREFIX + 5+ digits")
	out := fs.String("out", "", "output file (JSON lines)")
	days := fs.Int("days", 365, "certificate validity")
	_ = fs.Parse(argv)
	ca, key, err := loadCA(*caCert, *caKey)
	if err != nil {
		return err
	}
	lines := make([]certLine, *count)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	next := make(chan int, 1024)
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				line, err := issue(ca, key, fmt.Sprintf("%s%05d", *prefix, i), time.Duration(*days)*24*time.Hour)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				lines[i] = line
			}
		}()
	}
	for i := 0; i < *count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for _, line := range lines {
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
