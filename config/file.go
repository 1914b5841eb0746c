package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// walgExts are the extensions wal-g's viper looks for after ~/.walg, in its
// order (viper.SupportedExts); the first file that exists is the one read.
var walgExts = []string{"json", "toml", "yaml", "yml", "properties", "props", "prop", "hcl", "tfvars", "dotenv", "env", "ini"}

// FilePath says which config file a command reads, as wal-g finds its own:
// the --config flag, else TUSK_CONFIG, else wal-g's WALG_CONFIG_PATH, else
// the first of ~/.walg.json, ~/.walg.toml, ~/.walg.yaml, ~/.walg.yml (and
// the other extensions viper knows) in home, the user's home folder. "" is
// no config file.
func FilePath(flag string, env []string, home string) string {
	if flag != "" {
		return flag
	}
	for _, k := range []string{FileEnv, WalgFileEnv} {
		for _, kv := range env {
			if name, v, ok := strings.Cut(kv, "="); ok && name == k && v != "" {
				return v
			}
		}
	}
	if home == "" {
		return ""
	}
	for _, ext := range walgExts {
		p := filepath.Join(home, ".walg."+ext)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// fileEntry is one top-level key of a config file, in the file's order.
type fileEntry struct {
	key string
	val any
}

// readConfigFile reads a flat map whose keys are the same names as the
// environment's, in the format its extension names as wal-g's viper reads
// it: .json (a key given twice: the last wins, as in encoding/json), .yaml
// or .yml, .toml; without an extension, JSON or YAML. Keys are
// case-insensitive, as in viper. wal-g settings tusk does not have are
// refused or noted as in the environment (walgCheck); other unknown keys are
// refused.
func readConfigFile(path string) (map[string]string, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s cannot be read: %w", path, unwrapPathErr(err))
	}
	entries, err := decodeConfigFile(path, b)
	if err != nil {
		return nil, nil, err
	}
	raw := map[string]any{}
	for _, e := range entries {
		raw[strings.ToUpper(e.key)] = e.val // later entries win
	}
	out := map[string]string{}
	keys := make([]string, 0, len(raw))
	var foreign []string
	for k, v := range raw {
		if _, ok := Lookup(k); !ok {
			if _, ok := walgVerdict(k); ok {
				if v != nil && v != "" {
					foreign = append(foreign, k)
				}
				continue
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sort.Strings(foreign)
	notes, err := walgCheck(foreign, "in config file "+path, true)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if _, ok := Lookup(k); !ok {
			return nil, nil, fmt.Errorf("config file %s has unknown setting %s%s; fix or remove it (tusk help settings lists them)", path, k, suggest(k))
		}
		s, ok := scalarString(raw[k])
		if !ok {
			return nil, nil, fmt.Errorf("config file %s: %s must be a single value, not a list or map", path, k)
		}
		if s != "" {
			out[k] = strings.TrimRight(s, "\r\n") // as wal-g's GetSetting trims
		}
	}
	return out, notes, nil
}

func decodeConfigFile(path string, b []byte) ([]fileEntry, error) {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	switch ext {
	case "json":
		entries, err := decodeJSON(b)
		if err != nil {
			return nil, fmt.Errorf("config file %s is not valid JSON: %v", path, err)
		}
		return entries, nil
	case "yaml", "yml":
		entries, err := decodeYAML(b)
		if err != nil {
			return nil, fmt.Errorf("config file %s is not valid YAML: %v", path, err)
		}
		return entries, nil
	case "toml":
		m := map[string]any{}
		if err := toml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("config file %s is not valid TOML: %v", path, err)
		}
		entries := make([]fileEntry, 0, len(m))
		for _, k := range sortedKeys(m) {
			entries = append(entries, fileEntry{k, m[k]})
		}
		return entries, nil
	case "properties", "props", "prop", "hcl", "tfvars", "dotenv", "env", "ini":
		return nil, fmt.Errorf("config file %s is a .%s file, which tusk does not read (nor does wal-g's own viper read most of these); write the same keys as JSON (.json), YAML (.yaml) or TOML (.toml)", path, ext)
	}
	if json.Valid(b) {
		if entries, err := decodeJSON(b); err == nil {
			return entries, nil
		}
	}
	entries, err := decodeYAML(b)
	if err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML or JSON: %v", path, err)
	}
	return entries, nil
}

// decodeJSON reads a JSON object's keys and values in the file's order, so
// that a key given twice resolves as viper's encoding/json resolves it: the
// last wins.
func decodeJSON(b []byte) ([]fileEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("it is not an object of settings ({\"WALG_S3_PREFIX\": \"s3://...\"})")
	}
	var entries []fileEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		entries = append(entries, fileEntry{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("it has more after the object of settings")
	}
	return entries, nil
}

func decodeYAML(b []byte) ([]fileEntry, error) {
	var node yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&node); err != nil {
		if errors.Is(err, io.EOF) { // an empty file
			return nil, nil
		}
		return nil, err
	}
	if len(node.Content) == 0 {
		return nil, nil
	}
	m := node.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, errors.New("it is not a map of settings (WALG_S3_PREFIX: s3://...)")
	}
	entries := make([]fileEntry, 0, len(m.Content)/2)
	lines := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if line, ok := lines[strings.ToUpper(k.Value)]; ok {
			return nil, fmt.Errorf("it names %s twice (lines %d and %d), and wal-g's viper reads no setting from such a file; remove one", k.Value, line, k.Line)
		}
		lines[strings.ToUpper(k.Value)] = k.Line
		var v any
		if err := m.Content[i+1].Decode(&v); err != nil {
			return nil, err
		}
		entries = append(entries, fileEntry{m.Content[i].Value, v})
	}
	return entries, nil
}

// scalarString is a config file's value as wal-g's viper gives it as a
// string (cast.ToString); ok is false for lists and maps.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case time.Time:
		return v.Format(time.RFC3339Nano), true
	case fmt.Stringer: // TOML's local dates and times
		return v.String(), true
	}
	return "", false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
