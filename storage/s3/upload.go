package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/storage"
)

// Why our own uploader: the SDK's feature/s3/manager is deprecated and its
// successor feature/s3/transfermanager is pre-1.0 (v0.x, its API may still
// change). What we need is small: stream a reader of unknown length with
// bounded memory, all or nothing.
//
//   - The first part is read into a pooled buffer (the first MiB into a small
//     one, so that small objects cost no part buffer). A reader that ends
//     within the first part (WAL segments, most objects) becomes one
//     PutObject with a known Content-Length: S3 shows the object whole or
//     not at all.
//   - A longer reader becomes a multipart upload: parts are read in turn into
//     pooled buffers and sent by an errgroup with SetLimit(UploadConcurrency),
//     so at most UploadConcurrency+1 buffers exist per Put (one being filled).
//   - Every part (and a single PutObject) carries a CRC32C checksum, which S3
//     and MinIO verify before accepting it; S3 keeps it and GetObject checks
//     it again. The SDK retries a part from its in-memory buffer.
//   - Any failure, of the reader, a request or ctx, aborts the multipart
//     upload (with a fresh, short context), so no object appears under the
//     key and no parts linger.
//
// The object becomes visible when the last request (PutObject or
// CompleteMultipartUpload) succeeds. If ctx is cancelled while that request
// is in flight, S3 may have stored the object although Put returns an error;
// as with any network store, a retried Put simply replaces it.

// abortTimeout bounds the AbortMultipartUpload that cleans up after a failed
// Put, which runs even when the Put's ctx is done.
const abortTimeout = 30 * time.Second

const checksumAlgorithm = types.ChecksumAlgorithmCrc32c

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumCRC32C returns the x-amz-checksum-crc32c value of data. We compute
// it ourselves, from the buffer we hold anyway, so that the SDK sends it as a
// plain header on HTTP and HTTPS alike; left to itself, the SDK sends it over
// HTTPS as an aws-chunked trailer, which some S3-compatible servers reject.
func checksumCRC32C(data []byte) *string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(data, castagnoli))
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	if err := s.put(ctx, s.objectKey(key), r); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// smallSize is the size of the buffer a Put reads first: an object that fits
// is sent from it, and a larger one is copied into a part buffer.
const smallSize = 1 << 20

func (s *Store) getBuf() *[]byte  { return s.bufs.get() }
func (s *Store) putBuf(b *[]byte) { s.bufs.put(b) }

// bufferList is a bounded free list of equal-sized buffers.
type bufferList struct {
	size int
	free chan *[]byte
}

func newBufferList(size, keep int) bufferList {
	return bufferList{size: size, free: make(chan *[]byte, keep)}
}

func (l bufferList) get() *[]byte {
	select {
	case b := <-l.free:
		return b
	default:
		b := make([]byte, l.size)
		return &b
	}
}

func (l bufferList) put(b *[]byte) {
	select {
	case l.free <- b:
	default: // enough kept; let the GC have it
	}
}

func (s *Store) put(ctx context.Context, objKey string, r io.Reader) error {
	// Small objects never touch a part buffer.
	small := s.smallBufs.get()
	n, err := readPart(ctx, r, *small)
	switch {
	case err == io.EOF:
		defer s.smallBufs.put(small)
		return s.putObject(ctx, objKey, (*small)[:n])
	case err != nil:
		s.smallBufs.put(small)
		return err
	}
	first := s.getBuf()
	copy(*first, *small)
	s.smallBufs.put(small)
	m, err := readPart(ctx, r, (*first)[n:])
	n += m
	switch {
	case err == io.EOF:
		defer s.putBuf(first)
		return s.putObject(ctx, objKey, (*first)[:n])
	case err != nil:
		s.putBuf(first)
		return err
	}
	// The first part is full; read the second to learn whether the reader
	// ended exactly at the part boundary.
	second := s.getBuf()
	n2, err := readPart(ctx, r, *second)
	switch {
	case err != io.EOF && err != nil:
		s.putBuf(first)
		s.putBuf(second)
		return err
	case n2 == 0:
		defer s.putBuf(first)
		s.putBuf(second)
		return s.putObject(ctx, objKey, *first)
	}
	return s.multipart(ctx, objKey, r, []part{{first, n}, {second, n2}}, err == io.EOF)
}

// readPart fills buf from r. It returns io.EOF, with n possibly > 0, when r
// ended, nil when buf is full, or r's error or ctx's, checked between Reads.
func readPart(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, io.EOF
		}
		if err != nil {
			return n, fmt.Errorf("read: %w", err)
		}
		if empty = empty + 1; m > 0 {
			empty = 0
		} else if empty == 100 { // as bufio does, rather than spin forever
			return n, fmt.Errorf("read: %w", io.ErrNoProgress)
		}
	}
	return n, nil
}

func (s *Store) putObject(ctx context.Context, objKey string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.cfg.Bucket),
		Key:                  aws.String(objKey),
		Body:                 bytes.NewReader(data),
		ContentLength:        aws.Int64(int64(len(data))),
		ChecksumAlgorithm:    checksumAlgorithm,
		ChecksumCRC32C:       checksumCRC32C(data),
		ServerSideEncryption: types.ServerSideEncryption(s.cfg.SSE),
		SSEKMSKeyId:          s.kmsKeyID(),
		StorageClass:         types.StorageClass(s.cfg.StorageClass),
	}, s.unsignedPayload)
	return s.classify(ctx, err)
}

func (s *Store) kmsKeyID() *string {
	if s.cfg.SSEKMSKeyID == "" {
		return nil
	}
	return aws.String(s.cfg.SSEKMSKeyID)
}

// part is a filled buffer waiting to be uploaded.
type part struct {
	buf *[]byte
	n   int
}

// multipart uploads pending and then the rest of r as one multipart upload;
// eof says r has already ended. It owns the buffers in pending.
func (s *Store) multipart(ctx context.Context, objKey string, r io.Reader, pending []part, eof bool) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(s.cfg.Bucket),
		Key:                  aws.String(objKey),
		ChecksumAlgorithm:    checksumAlgorithm,
		ServerSideEncryption: types.ServerSideEncryption(s.cfg.SSE),
		SSEKMSKeyId:          s.kmsKeyID(),
		StorageClass:         types.StorageClass(s.cfg.StorageClass),
	})
	if err != nil {
		for _, p := range pending {
			s.putBuf(p.buf)
		}
		return s.classify(ctx, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			err = s.abort(ctx, objKey, uploadID, err)
		}
	}()

	// partsCtx stops the parts in flight when the reader fails.
	partsCtx, cancelParts := context.WithCancel(ctx)
	defer cancelParts()
	g, gctx := errgroup.WithContext(partsCtx)
	g.SetLimit(s.cfg.UploadConcurrency)

	// Only this goroutine appends to done; each part's goroutine fills in
	// its own element.
	var done []*types.CompletedPart
	send := func(p part) {
		num := int32(len(done) + 1)
		cp := &types.CompletedPart{PartNumber: aws.Int32(num)}
		done = append(done, cp)
		g.Go(func() error {
			defer s.putBuf(p.buf)
			sum := checksumCRC32C((*p.buf)[:p.n])
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:            aws.String(s.cfg.Bucket),
				Key:               aws.String(objKey),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              bytes.NewReader((*p.buf)[:p.n]),
				ContentLength:     aws.Int64(int64(p.n)),
				ChecksumAlgorithm: checksumAlgorithm,
				ChecksumCRC32C:    sum,
			}, s.unsignedPayload)
			if err != nil {
				return fmt.Errorf("upload part %d: %w", num, s.classify(gctx, err))
			}
			// CompleteMultipartUpload wants each part's checksum back.
			cp.ETag = out.ETag
			cp.ChecksumCRC32C = sum
			return nil
		})
	}
	for _, p := range pending {
		send(p)
	}

	var readErr error
	for !eof && gctx.Err() == nil {
		buf := s.getBuf()
		n, err := readPart(ctx, r, *buf)
		if n > 0 && len(done) == s.maxParts {
			s.putBuf(buf)
			readErr = fmt.Errorf("object is larger than %d parts of %d MiB, S3's limit; raise the part size", s.maxParts, s.cfg.PartSize>>20)
			break
		}
		if n > 0 {
			send(part{buf, n})
		} else {
			s.putBuf(buf)
		}
		if err == io.EOF {
			eof = true
		} else if err != nil {
			readErr = err
		}
		if readErr != nil {
			break
		}
	}
	if readErr != nil {
		cancelParts()
	}
	partsErr := g.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case readErr != nil:
		return readErr
	case partsErr != nil:
		return partsErr
	}

	parts := make([]types.CompletedPart, len(done))
	for i, cp := range done {
		parts[i] = *cp
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(objKey),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", s.classify(ctx, err))
	}
	return nil
}

// abort cancels a multipart upload after cause, so that S3 drops its parts.
// It runs on a fresh context: the Put's own may be the reason for the abort.
func (s *Store) abort(ctx context.Context, objKey string, uploadID *string, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(objKey),
		UploadId: uploadID,
	})
	var noUpload *types.NoSuchUpload
	if err == nil || errors.As(err, &noUpload) {
		return cause
	}
	return fmt.Errorf("%w (and aborting multipart upload %s failed, so its parts stay until a bucket lifecycle rule removes them: %v)",
		cause, aws.ToString(uploadID), s.classify(actx, err))
}

// unsignedPayload signs a body-carrying request without hashing its body
// (UNSIGNED-PAYLOAD). The SDK otherwise hashes every body with SHA-256 when
// the endpoint is plain HTTP, a second pass over each part that on a small
// machine costs more than compressing it. The body's integrity is still
// checked end to end: the server verifies the CRC32C we send with it, and
// our own objects carry a SHA-256 of their content.
func (s *Store) unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}
