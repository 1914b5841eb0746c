package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// minioReadyTimeout bounds how long StartMinIO and Start wait for the server.
const minioReadyTimeout = 30 * time.Second

// MinIO is a MinIO server run for one test on 127.0.0.1, with random
// credentials and one fresh bucket.
type MinIO struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string // random per instance
	Bucket    string // a fresh bucket, created before StartMinIO returns
	Region    string // "us-east-1"
	// CAFile, for a server started with StartMinIOTLS, is the PEM file of
	// the self-signed certificate it serves (for AWS_CA_BUNDLE); "" for HTTP.
	CAFile string

	bin         string
	dir         string // data directory
	certsDir    string
	logFile     string
	port        int
	consolePort int

	mu   sync.Mutex
	proc *minioProc // nil when stopped
}

// minioProc is one run of the server. done is closed after cmd.Wait returns.
type minioProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from cmd.Wait, valid after done is closed
}

// MinIOBinary returns the MinIO binary: $TUSK_MINIO if set, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin/minio, where
// scripts/install-test-deps.sh builds it. ok reports whether it is an
// executable file.
func MinIOBinary() (path string, ok bool) {
	path = os.Getenv("TUSK_MINIO")
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", false
		}
		path = filepath.Join(cache, "tusk", "bin", "minio")
	}
	fi, err := os.Stat(path)
	return path, err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// StartMinIO starts a MinIO server on free ports of 127.0.0.1 with a data
// directory under t.TempDir(), waits until it is live, and creates a fresh
// bucket. t.Cleanup kills it. The test is skipped (or fails under CI /
// TUSK_TEST_REQUIRE) when the binary is missing.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return startMinIO(t, false)
}

// StartMinIOTLS is StartMinIO serving HTTPS with a fresh self-signed
// certificate for 127.0.0.1 (in CAFile): for peers that speak S3 only over
// HTTPS, like pgBackRest before 2.58.
func StartMinIOTLS(t testing.TB) *MinIO {
	t.Helper()
	return startMinIO(t, true)
}

func startMinIO(t testing.TB, useTLS bool) *MinIO {
	t.Helper()
	bin, ok := MinIOBinary()
	Require(t, "minio", ok, "no executable MinIO binary at "+bin)
	dir := t.TempDir()
	m := &MinIO{
		AccessKey:   "tusk" + randomHex(6),
		SecretKey:   randomHex(20),
		Bucket:      "tusk-test-" + randomHex(4),
		Region:      "us-east-1",
		bin:         bin,
		dir:         filepath.Join(dir, "data"),
		certsDir:    filepath.Join(dir, "certs"),
		logFile:     filepath.Join(dir, "minio.log"),
		port:        freePort(t),
		consolePort: freePort(t),
	}
	m.Endpoint = "http://127.0.0.1:" + strconv.Itoa(m.port)
	for _, d := range []string{m.dir, m.certsDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("start minio: %v", err)
		}
	}
	if useTLS {
		if err := writeSelfSigned(m.certsDir); err != nil {
			t.Fatalf("start minio: certificate: %v", err)
		}
		m.Endpoint = "https://127.0.0.1:" + strconv.Itoa(m.port)
		// A copy the server user (archive_command) can read too.
		crt, err := os.ReadFile(filepath.Join(m.certsDir, "public.crt"))
		if err != nil {
			t.Fatalf("start minio: %v", err)
		}
		m.CAFile = filepath.Join(ServerTempDir(t), "minio-ca.crt")
		if err := os.WriteFile(m.CAFile, crt, 0o644); err != nil {
			t.Fatalf("start minio: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := m.stop(); err != nil {
			t.Errorf("stop minio: %v", err)
		}
		if t.Failed() {
			t.Logf("minio log (last 30 lines):\n%s", tailFile(m.logFile, 30))
		}
	})
	m.Start(t)

	ctx, cancel := context.WithTimeout(t.Context(), minioReadyTimeout)
	defer cancel()
	client := m.Client()
	// MinIO may answer the liveness probe before its object layer is ready.
	for {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.Bucket)})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create bucket %s: %v\nminio log (last 30 lines):\n%s", m.Bucket, err, tailFile(m.logFile, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return m
}

// Client returns an S3 client for this server: path-style addressing, the
// server's static credentials, region us-east-1, and no shared AWS config.
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Region:       m.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		HTTPClient:   m.httpClient(0),
	})
}

// httpClient trusts the server's own certificate when it serves HTTPS.
func (m *MinIO) httpClient(timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if m.CAFile == "" {
		return c
	}
	caPEM, err := os.ReadFile(m.CAFile)
	if err != nil {
		panic(err) // written by StartMinIOTLS before any client exists
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return c
}

// Env returns the environment that points tusk at this server, as "K=V":
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT and
// AWS_S3_FORCE_PATH_STYLE=true, and AWS_CA_BUNDLE when it serves HTTPS.
func (m *MinIO) Env() []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_REGION=" + m.Region,
		"AWS_ENDPOINT=" + m.Endpoint,
		"AWS_S3_FORCE_PATH_STYLE=true",
	}
	if m.CAFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+m.CAFile)
	}
	return env
}

// Port is the server's port on 127.0.0.1.
func (m *MinIO) Port() int { return m.port }

// writeSelfSigned writes MinIO's public.crt and private.key into dir: an
// ECDSA P-256 certificate for 127.0.0.1 and localhost, valid for a day.
func writeSelfSigned(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", "127.0.0.1"}, // pgBackRest matches names only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// URL returns "s3://<bucket>/<prefix>".
func (m *MinIO) URL(prefix string) string {
	return "s3://" + m.Bucket + "/" + strings.TrimPrefix(prefix, "/")
}

// Stop kills the server and waits for it to exit, so that the storage is
// unreachable until Start; a no-op when it is stopped.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	if err := m.stop(); err != nil {
		t.Fatalf("stop minio: %v", err)
	}
}

func (m *MinIO) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	p := m.proc
	m.proc = nil
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill minio: %w", err)
	}
	<-p.done
	return nil
}

// Start starts the server (again) on the same port, data directory and
// credentials, and waits until it is live; a no-op when it is running.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		return
	}
	log, err := os.OpenFile(m.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("start minio: %v", err)
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(m.bin, "server",
		"--address", "127.0.0.1:"+strconv.Itoa(m.port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(m.consolePort),
		"--certs-dir", m.certsDir,
		m.dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	p := &minioProc{cmd: cmd, done: make(chan struct{})}
	// Waited for by stop, which every path (including cleanup) reaches.
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p
	if err := m.waitLive(t.Context(), p); err != nil {
		t.Fatalf("start minio: %v\nminio log (last 30 lines):\n%s", err, tailFile(m.logFile, 30))
	}
}

// waitLive polls GET /minio/health/live until it answers 200.
func (m *MinIO) waitLive(ctx context.Context, p *minioProc) error {
	ctx, cancel := context.WithTimeout(ctx, minioReadyTimeout)
	defer cancel()
	client := m.httpClient(2 * time.Second)
	url := m.Endpoint + "/minio/health/live"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("minio exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not live after %v: %w", minioReadyTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// randomHex returns 2n random lowercase hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b)
}
