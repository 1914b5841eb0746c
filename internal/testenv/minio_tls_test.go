package testenv

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestMinIOTLS: the HTTPS server answers a client that trusts its
// certificate (and the bucket exists).
func TestMinIOTLS(t *testing.T) {
	m := StartMinIOTLS(t)
	if !strings.HasPrefix(m.Endpoint, "https://") || m.CAFile == "" {
		t.Fatalf("endpoint %s, CA file %q", m.Endpoint, m.CAFile)
	}
	if _, err := m.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
}
