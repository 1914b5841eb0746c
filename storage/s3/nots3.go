package s3

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// notS3Error is an answer that no S3 server gives: an HTML page, or an
// error that is not S3's XML. What was answered is in what.
type notS3Error struct{ what string }

func (e *notS3Error) Error() string {
	return "the endpoint does not answer as S3: it returned " + e.what
}

// xmlBodied are the operations whose successful answer is an XML document.
var xmlBodied = map[string]bool{
	"ListObjectsV2": true, "CreateMultipartUpload": true, "CompleteMultipartUpload": true, "DeleteObjects": true,
}

// objectBodied are the operations whose successful answer carries an
// object's own content type, which may be anything.
var objectBodied = map[string]bool{"GetObject": true, "HeadObject": true}

// notS3 says what resp is if no S3 server would have answered op with it,
// and "" if it may be S3's. Only sure signs count: an HTML page, an error
// that is not XML, a listing that is not XML. 5xx answers are left to the
// retries (a proxy's "502 Bad Gateway" page while the store restarts).
func notS3(op string, resp *http.Response) string {
	if resp.StatusCode >= 500 {
		return ""
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	xml := strings.Contains(mt, "xml") && mt != "application/xhtml+xml"
	var bad bool
	switch {
	case ok2xx && objectBodied[op]:
	case mt == "text/html" || mt == "application/xhtml+xml":
		bad = true
	case ct == "" || xml:
	case !ok2xx, xmlBodied[op]:
		bad = true
	}
	if !bad {
		return ""
	}
	what := fmt.Sprintf("%s with %s", resp.Status, ct)
	if resp.Status == "" {
		what = fmt.Sprintf("%d %s with %s", resp.StatusCode, http.StatusText(resp.StatusCode), ct)
	}
	if s := resp.Header.Get("Server"); s != "" {
		what += " from server " + s
	}
	return what
}

// addNotS3Check runs innermost in the Deserialize step, so it sees each raw
// answer before the operation's deserializer reads it as S3's (and, say,
// takes a web server's 404 page for a missing bucket).
func addNotS3Check(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("TuskNotS3",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if err != nil {
				return out, md, err
			}
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if !ok || resp.Response == nil {
				return out, md, err
			}
			if what := notS3(awsmiddleware.GetOperationName(ctx), resp.Response); what != "" {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				return out, md, &notS3Error{what}
			}
			return out, md, nil
		}), middleware.After)
}
