package config

import (
	"fmt"
	"regexp"
	"strings"
)

// wal-g's settings that tusk has no equivalent for. The ones tusk honours
// are aliases in the settings table. Of the rest:
//
//   - refused: a setting that changes what is stored or how it is protected
//     (client-side encryption, another kind of storage, object locks). Going
//     on without it would store plaintext, or store it somewhere else than
//     the operator thinks, and exit 0. tusk stops before any work, in one
//     sentence.
//   - noted: a tuning knob or a feature whose absence loses nothing. tusk
//     goes on and logs one line saying it is ignored and why.
//
// README.md's table of wal-g names says the same.
type walgKind int

const (
	walgNoted walgKind = iota + 1
	walgRefused
	// walgProcess: honoured from the environment by the Go runtime or the
	// AWS SDK, which read it there themselves; in a config file (where
	// wal-g copies it into its environment) it is refused, since tusk would
	// go on without it.
	walgProcess
	// walgRuntime: a Go runtime knob, honoured from the environment (the
	// runtime reads it there) and noted in a config file, where its
	// absence loses nothing.
	walgRuntime
)

type walgName struct {
	kind walgKind
	why  string // completes "WALG_X is refused: ..." or "WALG_X is ignored: ..."
}

const (
	whyEncryption = "it turns on a kind of wal-g client-side encryption that tusk does not read or write " +
		"(tusk encrypts in wal-g's libsodium format: WALG_LIBSODIUM_KEY or TUSK_ENCRYPTION_KEY, and " +
		"TUSK_ENCRYPTION_KEY_FILE); tusk would store the WAL and backups unencrypted. Unset it and use a " +
		"libsodium key for a new repository, or keep using wal-g for this one"
	whyStorage = "it names a kind of storage tusk does not support; tusk stores into a folder (file://) or " +
		"an S3-compatible bucket (s3://): set TUSK_REPO"
	whyLock = "it asks for S3 Object Lock retention on what is stored, which tusk does not set; " +
		"set a default retention on the bucket instead and unset it"
	whyCA         = "tusk does not read it; point SSL_CERT_FILE (or AWS_CA_BUNDLE, in the environment) at the CA bundle instead and unset it"
	whySSEC       = "it asks for S3 server-side encryption with a key of the customer's (SSE-C), which tusk does not send; tusk would store the objects without it. Use S3_SSE=aws:kms or tusk's client-side encryption (WALG_LIBSODIUM_KEY) instead and unset it"
	whyProcess    = "tusk's AWS SDK reads it from the environment only, and tusk would go on without it; set it in the environment of the command instead of the config file"
	whyRuntime    = "tusk's Go runtime reads it from the environment only; set it there if it is wanted"
	whyRole       = "tusk does not assume the role it names with the other credentials, and would store with those credentials instead; name the role in an AWS_PROFILE (role_arn in the AWS config file), or give a web identity (AWS_WEB_IDENTITY_TOKEN_FILE, with which the AWS SDK assumes it), and unset it"
	whyEndpoint   = "tusk does not look its S3 endpoint up from a URL, and without it would send the objects to AWS's default endpoint; set AWS_ENDPOINT to the endpoint's https:// URL and unset it"
	whyOtherKind  = "tusk stores into a folder or an S3-compatible bucket only, so the settings of wal-g's other storages have no effect"
	whyNoUserData = "tusk does not store user data with a backup yet"
	whyDelta      = "tusk's incremental backups use PostgreSQL 17's WAL summaries (summarize_wal = on), or page LSNs in local mode, not wal-g's delta maps"
	whyComposer   = "tusk cuts the server's stream into parts in order"
	whyFailover   = "tusk has one repository (TUSK_REPO) and no failover storages"
	whyStatsd     = "tusk sends no statsd metrics"
	whyHTTP       = "tusk has no HTTP listener"
	whyProfile    = "tusk writes a CPU profile with CPUPROFILE=file, not wal-g's profiler"
	whyPageSizes  = "tusk reads the segment, page and block sizes from the server and from each segment"
	whyS3Retries  = "tusk retries S3 requests with one policy of its own (TUSK_S3_MAX_RETRIES)"
	whyRanges     = "tusk resumes a broken download itself (TUSK_S3_MAX_RETRIES)"
)

// walgNames are wal-g's settings (for PostgreSQL: its common and PostgreSQL
// lists and its storages' settings, internal/config/config.go and
// pkg/storages/*/configure.go) that tusk does not honour as an alias in its
// settings table, with what tusk does with each. A storage setting (in
// storageNames) may also be spelled with WALG_ or WALE_ in front, as wal-g
// reads it.
var walgNames = map[string]walgName{
	// Client-side encryption.
	"WALG_PGP_KEY":                                  {walgRefused, whyEncryption},
	"WALG_PGP_KEY_PATH":                             {walgRefused, whyEncryption},
	"WALG_PGP_KEY_PASSPHRASE":                       {walgRefused, whyEncryption},
	"WALG_ENVELOPE_PGP_KEY":                         {walgRefused, whyEncryption},
	"WALG_ENVELOPE_PGP_KEY_PATH":                    {walgRefused, whyEncryption},
	"WALG_ENVELOPE_PGP_YC_CSE_KMS_KEY_ID":           {walgRefused, whyEncryption},
	"WALG_ENVELOPE_PGP_YC_SERVICE_ACCOUNT_KEY_FILE": {walgRefused, whyEncryption},
	"WALG_ENVELOPE_PGP_YC_ENDPOINT":                 {walgRefused, whyEncryption},
	"WALG_ENVELOPE_CACHE_EXPIRATION":                {walgRefused, whyEncryption},
	"WALG_CSE_KMS_ID":                               {walgRefused, whyEncryption},
	"WALG_CSE_KMS_REGION":                           {walgRefused, whyEncryption},
	"WALG_GPG_KEY_ID":                               {walgRefused, whyEncryption},
	"WALE_GPG_KEY_ID":                               {walgRefused, whyEncryption},
	"GPG_KEY_ID":                                    {walgRefused, whyEncryption},
	"YC_CSE_KMS_KEY_ID":                             {walgRefused, whyEncryption},
	"YC_SERVICE_ACCOUNT_KEY_FILE":                   {walgRefused, whyEncryption},

	// Other storage, and where and how objects are kept.
	"WALG_GS_PREFIX":              {walgRefused, whyStorage},
	"WALE_GS_PREFIX":              {walgRefused, whyStorage},
	"WALG_AZ_PREFIX":              {walgRefused, whyStorage},
	"WALE_AZ_PREFIX":              {walgRefused, whyStorage},
	"WALE_WABS_PREFIX":            {walgRefused, whyStorage},
	"WALG_SWIFT_PREFIX":           {walgRefused, whyStorage},
	"WALE_SWIFT_PREFIX":           {walgRefused, whyStorage},
	"WALG_SSH_PREFIX":             {walgRefused, whyStorage},
	"WALE_SSH_PREFIX":             {walgRefused, whyStorage},
	"WALG_OSS_PREFIX":             {walgRefused, whyStorage},
	"WALE_OSS_PREFIX":             {walgRefused, whyStorage},
	"WALG_STORAGE_PREFIX":         {walgRefused, whyStorage},
	"WALG_FAILOVER_STORAGES":      {walgRefused, whyStorage},
	"WALG_TARGET_STORAGE":         {walgRefused, whyStorage},
	"WALE_S3_ENDPOINT":            {walgRefused, "tusk does not read WAL-E's endpoint syntax, and without it would send the objects to AWS's default endpoint; set AWS_ENDPOINT (or TUSK_S3_ENDPOINT) to the endpoint's https:// URL, with AWS_S3_FORCE_PATH_STYLE=true for +path, and unset it"},
	"WALG_STREAM_CREATE_COMMAND":  {walgRefused, "tusk backs up PostgreSQL only, through its own commands; unset it"},
	"WALG_STREAM_RESTORE_COMMAND": {walgRefused, "tusk backs up PostgreSQL only, through its own commands; unset it"},

	// Read from the environment by the Go runtime or the AWS SDK.
	"GOMAXPROCS":                  {walgRuntime, whyRuntime},
	"GODEBUG":                     {walgRuntime, whyRuntime},
	"AWS_CA_BUNDLE":               {walgProcess, whyProcess},
	"AWS_CONFIG_FILE":             {walgProcess, whyProcess},
	"AWS_SHARED_CREDENTIALS_FILE": {walgProcess, whyProcess},

	// Tuning knobs and features whose absence loses nothing.
	"WALG_SERIALIZER_TYPE":                             {walgNoted, "tusk writes its own metadata format"},
	"WALG_SENTINEL_USER_DATA":                          {walgNoted, whyNoUserData},
	"WALG_FETCH_TARGET_USER_DATA":                      {walgNoted, whyNoUserData},
	"WALG_DELTA_FROM_USER_DATA":                        {walgNoted, whyNoUserData},
	"WALG_USE_WAL_DELTA":                               {walgNoted, whyDelta},
	"WALG_FORCE_WAL_DELTA":                             {walgNoted, whyDelta},
	"WALG_TAR_DISABLE_FSYNC":                           {walgNoted, "tusk always flushes what it restores and stores"},
	"WALG_TAR_SIZE_THRESHOLD":                          {walgNoted, "tusk's part size is TUSK_BACKUP_PART_SIZE"},
	"WALG_UPLOAD_DISK_CONCURRENCY":                     {walgNoted, "tusk streams the backup from the server and has no disk readers to tune"},
	"WALG_UPLOAD_QUEUE":                                {walgNoted, "tusk's uploads are bounded by TUSK_UPLOAD_CONCURRENCY"},
	"TOTAL_BG_UPLOADED_LIMIT":                          {walgNoted, "tusk's push-ahead is bounded by TUSK_WAL_PUSH_AHEAD"},
	"WALG_DOWNLOAD_FILE_RETRIES":                       {walgNoted, "tusk's retries are TUSK_S3_MAX_RETRIES"},
	"WALG_UPLOAD_WAL_METADATA":                         {walgNoted, "tusk records each WAL object's size and checksum in its header"},
	"WALG_ZSTD_LEVEL":                                  {walgNoted, "tusk takes zstd's level in TUSK_COMPRESSION, e.g. zstd:9"},
	"WALG_DISK_RATE_LIMIT":                             {walgNoted, "tusk has no rate limits"},
	"WALG_NETWORK_RATE_LIMIT":                          {walgNoted, "tusk has no rate limits; backup-push --spread spreads the checkpoint"},
	"WALG_USE_REVERSE_UNPACK":                          {walgNoted, "tusk unpacks each file once"},
	"WALG_SKIP_REDUNDANT_TARS":                         {walgNoted, "tusk unpacks each file once"},
	"WALG_USE_RATING_COMPOSER":                         {walgNoted, whyComposer},
	"WALG_USE_COPY_COMPOSER":                           {walgNoted, whyComposer},
	"WALG_USE_DATABASE_COMPOSER":                       {walgNoted, whyComposer},
	"WALG_WITHOUT_FILES_METADATA":                      {walgNoted, "tusk keeps PostgreSQL's own manifest with every backup"},
	"WALG_VERIFY_PAGE_CHECKSUMS":                       {walgNoted, "the server verifies page checksums as it sends a base backup"},
	"WALG_STORE_ALL_CORRUPT_BLOCKS":                    {walgNoted, "the server verifies page checksums as it sends a base backup"},
	"WALG_DIRECT_IO":                                   {walgNoted, "tusk's backup-push reads the data directory through the page cache"},
	"WALG_DIRECT_IO_BLOCK_COUNT":                       {walgNoted, "tusk's backup-push reads the data directory through the page cache"},
	"WALG_LOG_DESTINATION":                             {walgNoted, "tusk logs to standard error"},
	"WALG_SLOTNAME":                                    {walgNoted, "tusk has no WAL receiver"},
	"WALG_PG_WAL_SIZE":                                 {walgNoted, whyPageSizes},
	"WALG_PG_WAL_PAGE_SIZE":                            {walgNoted, whyPageSizes},
	"WALG_PG_BLOCK_SIZE":                               {walgNoted, whyPageSizes},
	"WALG_INTEGRITY_MAX_DELAYED_WALS":                  {walgNoted, "tusk wal-verify has no such allowance"},
	"WALG_STATSD_ADDRESS":                              {walgNoted, whyStatsd},
	"WALG_STATSD_EXTRA_TAGS":                           {walgNoted, whyStatsd},
	"WALG_ALIVE_CHECK_INTERVAL":                        {walgNoted, "tusk has no such check"},
	"WALG_STOP_BACKUP_TIMEOUT":                         {walgNoted, "tusk waits for the backup's WAL itself and says so once a minute"},
	"WALG_DAEMON_WAL_UPLOAD_TIMEOUT":                   {walgNoted, "tusk has no daemon mode"},
	"WALG_DISABLE_PARTIAL_RESTORE":                     {walgNoted, "tusk has no partial restore"},
	"WALG_FAILOVER_STORAGES_CHECK":                     {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CHECK_TIMEOUT":             {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CHECK_SIZE":                {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_LIFETIME":            {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_ALIVE_LIMIT":     {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_DEAD_LIMIT":      {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_ALIVE_MAX": {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_ALIVE_MIN": {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_DEAD_MAX":  {walgNoted, whyFailover},
	"WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_DEAD_MIN":  {walgNoted, whyFailover},
	"PGBACKREST_STANZA":                                {walgNoted, "tusk does not read pgBackRest repositories"},
	"PROFILE_SAMPLING_RATIO":                           {walgNoted, whyProfile},
	"PROFILE_MODE":                                     {walgNoted, whyProfile},
	"PROFILE_PATH":                                     {walgNoted, whyProfile},
	"HTTP_LISTEN":                                      {walgNoted, whyHTTP},
	"HTTP_EXPOSE_PPROF":                                {walgNoted, whyHTTP},
	"HTTP_EXPOSE_EXPVAR":                               {walgNoted, whyHTTP},
	"AWS_DEFAULT_OUTPUT":                               {walgNoted, "tusk prints no AWS CLI output"},
	"GOOGLE_APPLICATION_CREDENTIALS":                   {walgNoted, whyOtherKind},
}

// storageNames are the settings of wal-g's storages (pkg/storages/*:
// SettingList) that tusk does not honour as an alias. wal-g reads each as
// it is, or with WALG_ or WALE_ in front.
var storageNames = map[string]walgName{
	"AWS_ROLE_ARN":                  {walgRefused, whyRole},
	"AWS_ROLE_SESSION_NAME":         {walgRefused, whyRole},
	"S3_SSE_C":                      {walgRefused, whySSEC},
	"S3_CA_CERT_FILE":               {walgRefused, whyCA},
	"S3_RETENTION_PERIOD":           {walgRefused, whyLock},
	"S3_RETENTION_MODE":             {walgRefused, whyLock},
	"S3_ENDPOINT_SOURCE":            {walgRefused, whyEndpoint},
	"S3_ENDPOINT_PORT":              {walgNoted, "wal-g uses it only with S3_ENDPOINT_SOURCE, which tusk refuses"},
	"S3_ENDPOINT_PROTOCOL":          {walgNoted, "wal-g uses it only with S3_ENDPOINT_SOURCE, which tusk refuses"},
	"AWS_DUAL_STACK":                {walgNoted, "tusk uses the endpoint the AWS SDK chooses (AWS_USE_DUALSTACK_ENDPOINT in the environment)"},
	"S3_SKIP_VALIDATION":            {walgNoted, "tusk does not validate the bucket before use; the first request says what is wrong"},
	"S3_USE_YC_SESSION_TOKEN":       {walgNoted, "tusk takes a session token from AWS_SESSION_TOKEN"},
	"S3_USE_LIST_OBJECTS_V1":        {walgNoted, "tusk lists with ListObjectsV2"},
	"S3_LOG_LEVEL":                  {walgNoted, "tusk's log level is TUSK_LOG_LEVEL"},
	"S3_RANGE_BATCH_ENABLED":        {walgNoted, whyRanges},
	"S3_RANGE_MAX_RETRIES":          {walgNoted, whyRanges},
	"S3_REQUEST_ADDITIONAL_HEADERS": {walgNoted, "tusk sends no extra headers"},
	"S3_MIN_THROTTLING_RETRY_DELAY": {walgNoted, whyS3Retries},
	"S3_MAX_THROTTLING_RETRY_DELAY": {walgNoted, whyS3Retries},
	"S3_DISABLE_100_CONTINUE":       {walgNoted, "tusk's uploads do not wait for 100 Continue"},
	"S3_ENABLE_VERSIONING":          {walgNoted, "tusk deletes the current version of an object; the bucket's lifecycle rules keep or expire older versions"},
	"S3_DELETE_BATCH_SIZE":          {walgNoted, "tusk deletes objects in batches of its own size"},

	"GCS_CONTEXT_TIMEOUT":          {walgNoted, whyOtherKind},
	"GCS_NORMALIZE_PREFIX":         {walgNoted, whyOtherKind},
	"GCS_ENCRYPTION_KEY":           {walgNoted, whyOtherKind},
	"GCS_MAX_CHUNK_SIZE":           {walgNoted, whyOtherKind},
	"GCS_MAX_RETRIES":              {walgNoted, whyOtherKind},
	"OSS_ACCESS_KEY_ID":            {walgNoted, whyOtherKind},
	"OSS_ACCESS_KEY_SECRET":        {walgNoted, whyOtherKind},
	"OSS_SESSION_TOKEN":            {walgNoted, whyOtherKind},
	"OSS_ENDPOINT":                 {walgNoted, whyOtherKind},
	"OSS_REGION":                   {walgNoted, whyOtherKind},
	"OSS_ROLE_ARN":                 {walgNoted, whyOtherKind},
	"OSS_ROLE_SESSION_NAME":        {walgNoted, whyOtherKind},
	"OSS_SKIP_VALIDATION":          {walgNoted, whyOtherKind},
	"OSS_MAX_RETRIES":              {walgNoted, whyOtherKind},
	"OSS_CONNECT_TIMEOUT":          {walgNoted, whyOtherKind},
	"OSS_UPLOAD_PART_SIZE":         {walgNoted, whyOtherKind},
	"OSS_COPY_PART_SIZE":           {walgNoted, whyOtherKind},
	"SSH_PORT":                     {walgNoted, whyOtherKind},
	"SSH_PASSWORD":                 {walgNoted, whyOtherKind},
	"SSH_USERNAME":                 {walgNoted, whyOtherKind},
	"SSH_PRIVATE_KEY_PATH":         {walgNoted, whyOtherKind},
	"OS_USERNAME":                  {walgNoted, whyOtherKind},
	"OS_PASSWORD":                  {walgNoted, whyOtherKind},
	"OS_AUTH_URL":                  {walgNoted, whyOtherKind},
	"OS_TENANT_NAME":               {walgNoted, whyOtherKind},
	"OS_REGION_NAME":               {walgNoted, whyOtherKind},
	"AZURE_STORAGE_ACCOUNT":        {walgNoted, whyOtherKind},
	"AZURE_STORAGE_ACCESS_KEY":     {walgNoted, whyOtherKind},
	"AZURE_STORAGE_SAS_TOKEN":      {walgNoted, whyOtherKind},
	"AZURE_ENVIRONMENT_NAME":       {walgNoted, whyOtherKind},
	"AZURE_ENDPOINT_SUFFIX":        {walgNoted, whyOtherKind},
	"AZURE_BUFFER_SIZE":            {walgNoted, whyOtherKind},
	"AZURE_MAX_BUFFERS":            {walgNoted, whyOtherKind},
	"AZURE_TRY_TIMEOUT":            {walgNoted, whyOtherKind},
	"AZURE_BLOB_STORE_API_VERSION": {walgNoted, whyOtherKind},
}

// guardedName is a part of a setting's name that hints at protection or
// placement: an unknown WALG_/WALE_ name with one is refused, not noted,
// because going on without it could store data unprotected or elsewhere.
var guardedName = regexp.MustCompile(`KEY|PGP|GPG|CSE|KMS|SSE|CRYPT|SODIUM|CIPHER|CERT|PREFIX|STORAGE|RETENTION|LOCK`)

// walgVerdict says what tusk does with a name from the environment or a
// config file that is not one of its settings: ok is false for names that
// are none of wal-g's business (PATH, HOME).
func walgVerdict(name string) (walgName, bool) {
	if w, ok := walgNames[name]; ok {
		return w, true
	}
	if w, ok := storageNames[name]; ok {
		return w, true
	}
	for _, p := range []string{"WALG_", "WALE_"} {
		if w, ok := storageNames[strings.TrimPrefix(name, p)]; ok && strings.HasPrefix(name, p) {
			return w, true
		}
	}
	if !strings.HasPrefix(name, "WALG_") && !strings.HasPrefix(name, "WALE_") {
		return walgName{}, false
	}
	if hint := suggest(name); hint != "" {
		return walgName{walgRefused, "it is not a setting tusk knows" + hint}, true
	}
	if guardedName.MatchString(strings.TrimPrefix(strings.TrimPrefix(name, "WALG_"), "WALE_")) {
		return walgName{walgRefused, "tusk does not know this wal-g setting, and by its name it may change how or where data is stored; unset it"}, true
	}
	return walgName{walgNoted, "tusk does not know this wal-g setting"}, true
}

// walgCheck looks at the names set (non-empty) in one source and returns
// the first refusal as a usage error, and a note for each ignored name. A
// name the runtime or the AWS SDK reads from the environment is honoured
// there and refused in a config file (inFile).
func walgCheck(names []string, where string, inFile bool) (notes []string, err error) {
	for _, n := range names {
		w, ok := walgVerdict(n)
		switch {
		case !ok:
		case (w.kind == walgProcess || w.kind == walgRuntime) && !inFile:
		case w.kind == walgRefused || w.kind == walgProcess:
			return nil, fmt.Errorf("%s (%s) is refused: %s", n, where, w.why)
		default:
			notes = append(notes, fmt.Sprintf("%s (%s) is ignored: %s", n, where, w.why))
		}
	}
	return notes, nil
}
