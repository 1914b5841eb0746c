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
	whyCA = "tusk does not read it; point SSL_CERT_FILE at the CA bundle instead and unset it"
)

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

	// Other storage.
	"WALG_GS_PREFIX":                     {walgRefused, whyStorage},
	"WALE_GS_PREFIX":                     {walgRefused, whyStorage},
	"WALG_AZ_PREFIX":                     {walgRefused, whyStorage},
	"WALE_WABS_PREFIX":                   {walgRefused, whyStorage},
	"WALG_SWIFT_PREFIX":                  {walgRefused, whyStorage},
	"WALE_SWIFT_PREFIX":                  {walgRefused, whyStorage},
	"WALG_SSH_PREFIX":                    {walgRefused, whyStorage},
	"WALG_STORAGE_PREFIX":                {walgRefused, whyStorage},
	"WALG_FAILOVER_STORAGES":             {walgRefused, whyStorage},
	"WALG_TARGET_STORAGE":                {walgRefused, whyStorage},
	"WALG_S3_RETENTION_PERIOD":           {walgRefused, whyLock},
	"WALG_S3_RETENTION_MODE":             {walgRefused, whyLock},
	"WALG_S3_CA_CERT_FILE":               {walgRefused, whyCA},
	"WALE_S3_ENDPOINT":                   {walgRefused, "tusk does not read WAL-E's endpoint syntax, and without it would send the objects to AWS's default endpoint; set AWS_ENDPOINT (or TUSK_S3_ENDPOINT) to the endpoint's https:// URL, with AWS_S3_FORCE_PATH_STYLE=true for +path, and unset it"},
	"WALG_STREAM_CREATE_COMMAND":         {walgRefused, "tusk backs up PostgreSQL only, through its own commands; unset it"},
	"WALG_STREAM_RESTORE_COMMAND":        {walgRefused, "tusk backs up PostgreSQL only, through its own commands; unset it"},
	"WALG_SERIALIZER_TYPE":               {walgNoted, "tusk writes its own metadata format"},
	"WALG_SENTINEL_USER_DATA":            {walgNoted, "tusk does not store user data with a backup yet"},
	"WALG_FETCH_TARGET_USER_DATA":        {walgNoted, "tusk does not store user data with a backup yet"},
	"WALG_DELTA_FROM_USER_DATA":          {walgNoted, "tusk does not store user data with a backup yet"},
	"WALG_USE_WAL_DELTA":                 {walgNoted, "tusk's incremental backups use PostgreSQL 17's WAL summaries (summarize_wal = on), not wal-g's delta maps"},
	"WALG_FORCE_WAL_DELTA":               {walgNoted, "tusk's incremental backups use PostgreSQL 17's WAL summaries (summarize_wal = on), not wal-g's delta maps"},
	"WALG_TAR_DISABLE_FSYNC":             {walgNoted, "tusk always flushes what it restores and stores"},
	"WALG_TAR_SIZE_THRESHOLD":            {walgNoted, "tusk's part size is TUSK_BACKUP_PART_SIZE"},
	"WALG_UPLOAD_DISK_CONCURRENCY":       {walgNoted, "tusk streams the backup from the server and has no disk readers to tune"},
	"WALG_UPLOAD_QUEUE":                  {walgNoted, "tusk's uploads are bounded by TUSK_UPLOAD_CONCURRENCY"},
	"TOTAL_BG_UPLOADED_LIMIT":            {walgNoted, "tusk's push-ahead is bounded by TUSK_WAL_PUSH_AHEAD"},
	"WALG_DOWNLOAD_FILE_RETRIES":         {walgNoted, "tusk's retries are TUSK_S3_MAX_RETRIES"},
	"WALG_UPLOAD_WAL_METADATA":           {walgNoted, "tusk records each WAL object's size and checksum in its header"},
	"WALG_DISK_RATE_LIMIT":               {walgNoted, "tusk has no rate limits"},
	"WALG_NETWORK_RATE_LIMIT":            {walgNoted, "tusk has no rate limits; backup-push --spread spreads the checkpoint"},
	"WALG_USE_REVERSE_UNPACK":            {walgNoted, "tusk unpacks each file once"},
	"WALG_SKIP_REDUNDANT_TARS":           {walgNoted, "tusk unpacks each file once"},
	"WALG_USE_RATING_COMPOSER":           {walgNoted, "tusk cuts the server's stream into parts in order"},
	"WALG_USE_COPY_COMPOSER":             {walgNoted, "tusk cuts the server's stream into parts in order"},
	"WALG_USE_DATABASE_COMPOSER":         {walgNoted, "tusk cuts the server's stream into parts in order"},
	"WALG_WITHOUT_FILES_METADATA":        {walgNoted, "tusk keeps PostgreSQL's own manifest with every backup"},
	"WALG_VERIFY_PAGE_CHECKSUMS":         {walgNoted, "the server verifies page checksums as it sends a base backup"},
	"WALG_STORE_ALL_CORRUPT_BLOCKS":      {walgNoted, "the server verifies page checksums as it sends a base backup"},
	"WALG_DIRECT_IO":                     {walgNoted, "tusk does not use direct I/O"},
	"WALG_LOG_LEVEL":                     {walgNoted, "tusk's log level is TUSK_LOG_LEVEL"},
	"WALG_LOG_DESTINATION":               {walgNoted, "tusk logs to standard error"},
	"WALG_SLOTNAME":                      {walgNoted, "tusk has no WAL receiver"},
	"WALG_PG_WAL_SIZE":                   {walgNoted, "tusk reads the segment size from the server and from each segment"},
	"WALG_PG_WAL_PAGE_SIZE":              {walgNoted, "tusk reads the page size from each segment"},
	"WALG_PG_BLOCK_SIZE":                 {walgNoted, "tusk reads the block size from the server"},
	"WALG_INTEGRITY_MAX_DELAYED_WALS":    {walgNoted, "tusk wal-verify has no such allowance"},
	"WALG_PREFETCH_DIR":                  {walgNoted, "tusk's spool folder is TUSK_SPOOL_DIR"},
	"WALG_STATSD_ADDRESS":                {walgNoted, "tusk sends no statsd metrics"},
	"WALG_STATSD_EXTRA_TAGS":             {walgNoted, "tusk sends no statsd metrics"},
	"WALG_ALIVE_CHECK_INTERVAL":          {walgNoted, "tusk has no such check"},
	"WALG_STOP_BACKUP_TIMEOUT":           {walgNoted, "tusk waits for the backup's WAL itself and says so once a minute"},
	"WALG_DAEMON_WAL_UPLOAD_TIMEOUT":     {walgNoted, "tusk has no daemon mode"},
	"WALG_DISABLE_PARTIAL_RESTORE":       {walgNoted, "tusk has no partial restore"},
	"WALG_S3_MAX_PART_SIZE":              {walgNoted, "tusk's S3 part size is TUSK_S3_PART_SIZE"},
	"WALG_S3_USE_LIST_OBJECTS_V1":        {walgNoted, "tusk lists with ListObjectsV2"},
	"WALG_S3_RANGE_BATCH_ENABLED":        {walgNoted, "tusk retries whole downloads"},
	"WALG_S3_RANGE_MAX_RETRIES":          {walgNoted, "tusk retries whole downloads"},
	"WALG_S3_LOG_LEVEL":                  {walgNoted, "tusk's log level is TUSK_LOG_LEVEL"},
	"WALG_S3_REQUEST_ADDITIONAL_HEADERS": {walgNoted, "tusk sends no extra headers"},
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
// the first refusal as a usage error, and a note for each ignored name.
func walgCheck(names []string, where string) (notes []string, err error) {
	for _, n := range names {
		w, ok := walgVerdict(n)
		switch {
		case !ok:
		case w.kind == walgRefused:
			return nil, fmt.Errorf("%s (%s) is refused: %s", n, where, w.why)
		default:
			notes = append(notes, fmt.Sprintf("%s (%s) is ignored: %s", n, where, w.why))
		}
	}
	return notes, nil
}
