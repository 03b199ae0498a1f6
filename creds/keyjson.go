package creds

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Key types accepted in a key JSON's "type" field, and the Credentials.Type values they give.
const (
	TypeServiceAccount  = "service_account"
	TypeAuthorizedUser  = "authorized_user"
	TypeExternalAccount = "external_account"
)

// requiredFields lists, per key type, the fields Google's libraries cannot do without. A field
// ending in "{}" must be a JSON object; the others must be non-empty strings.
var requiredFields = map[string][]string{
	TypeServiceAccount:  {"client_email", "private_key"},
	TypeAuthorizedUser:  {"client_id", "client_secret", "refresh_token"},
	TypeExternalAccount: {"audience", "subject_token_type", "credential_source{}"},
}

// key is a validated key JSON. json is what the Google client gets: the input without
// surrounding whitespace, with private_key's literal "\n" sequences turned into newlines.
type key struct {
	typ       string
	json      []byte
	projectID string // service_account "project_id"; "" otherwise
}

// keyProblem is what is wrong with a key JSON. It is an enumeration on purpose: a KeyError is
// built only from a keyProblem, a field name from requiredFields and numbers, so no byte of the
// key can ever reach an error message.
type keyProblem int

const (
	probEmpty keyProblem = iota + 1
	probTooLarge
	probSyntax
	probTruncated
	probRawNewline
	probSingleQuotes
	probLooksLikePath
	probNotObject
	probNoType
	probTypeNotString
	probUnknownType
	probMissingField
	probFieldNotString
	probFieldNotObject
	probNotPEM
	probBadPrivateKey
)

// keyProblemText is each problem's message and advice. FuzzLoadKeyJSON checks that error
// messages are made of these, field names and numbers only.
var keyProblemText = map[keyProblem]struct{ what, fix string }{
	probEmpty:    {"key JSON is empty", "put the JSON key downloaded from Google Cloud there"},
	probTooLarge: {"key JSON is larger than 1 MiB", "point at the JSON key downloaded from Google Cloud"},
	probSyntax: {"key JSON is not valid JSON",
		"use the JSON key downloaded from Google Cloud, unchanged"},
	probTruncated: {"key JSON ends too early (truncated?)",
		"use the complete JSON key downloaded from Google Cloud"},
	probRawNewline: {"key JSON has a raw line break inside a string",
		`inside JSON strings line breaks must be written as \n; use the key file unchanged`},
	probSingleQuotes: {"key JSON uses single quotes (a Python dict, not JSON?)",
		"write it as JSON, e.g. with json.dumps, or use the key file unchanged"},
	probLooksLikePath: {"key JSON looks like a file path, not JSON",
		"put a key file path in GC_KEY_PATH, and key JSON itself in GC_KEYFILE_DICT"},
	probNotObject: {"key JSON is not a JSON object",
		"use the JSON key downloaded from Google Cloud, unchanged"},
	probNoType: {`key JSON has no "type" field`,
		`use a key with "type" service_account, authorized_user or external_account`},
	probTypeNotString: {`key JSON "type" is not a string`,
		`use a key with "type" service_account, authorized_user or external_account`},
	probUnknownType: {`key JSON "type" is not supported`,
		`use a key with "type" service_account, authorized_user or external_account`},
	probMissingField:   {"is missing", "download a fresh key from Google Cloud"},
	probFieldNotString: {"is not a non-empty string", "download a fresh key from Google Cloud"},
	probFieldNotObject: {"is not a JSON object", "download a fresh key from Google Cloud"},
	probNotPEM: {"is not a PEM block",
		"it must hold the PEM text exactly as in the downloaded key file; download a fresh key from Google Cloud"},
	probBadPrivateKey: {"is not a valid RSA private key", "download a fresh key from Google Cloud"},
}

// KeyError says what is wrong with a key JSON without quoting it: the problem, the field
// concerned (a name from Google's key format, never a value) and, for syntax errors, where.
type KeyError struct {
	problem keyProblem
	Type    string // the key's type when known and supported; one of the Type* constants
	Field   string // the field concerned, if any
	// Line and Column (1-based) and Offset (0-based byte) locate a JSON syntax error; 0 when
	// the problem is not a syntax error.
	Line, Column, Offset int
}

func (e *KeyError) Error() string {
	t := keyProblemText[e.problem]
	var b strings.Builder
	if e.Field != "" {
		fmt.Fprintf(&b, "key JSON field %q %s", e.Field, t.what)
		switch e.problem {
		case probMissingField, probFieldNotString, probFieldNotObject:
			fmt.Fprintf(&b, " (required for type %s)", e.Type)
		}
	} else {
		b.WriteString(t.what)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d, column %d (byte %d)", e.Line, e.Column, e.Offset)
	}
	b.WriteString("; ")
	b.WriteString(t.fix)
	return b.String()
}

// utf8BOM is tolerated before a key JSON, as some editors write it.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// loadKeyJSON validates a key JSON and returns it ready for the Google client. Errors are
// *KeyError and never contain any part of data.
func loadKeyJSON(data []byte) (key, error) {
	if len(data) > maxFileSize {
		return key{}, &KeyError{problem: probTooLarge}
	}
	lead := 0
	if bytes.HasPrefix(data, utf8BOM) {
		lead = len(utf8BOM)
	}
	body := bytes.TrimLeft(data[lead:], " \t\r\n")
	lead = len(data) - len(body)
	body = bytes.TrimRight(body, " \t\r\n")
	if len(body) == 0 {
		return key{}, &KeyError{problem: probEmpty}
	}

	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return key{}, jsonProblem(data, lead, body, err)
	}
	if fields == nil { // the JSON literal null
		return key{}, &KeyError{problem: probNotObject}
	}

	rawType, ok := fields["type"]
	if !ok {
		return key{}, &KeyError{problem: probNoType}
	}
	var typ string
	if err := json.Unmarshal(rawType, &typ); err != nil {
		return key{}, &KeyError{problem: probTypeNotString}
	}
	required, ok := requiredFields[typ]
	if !ok {
		return key{}, &KeyError{problem: probUnknownType}
	}
	for _, f := range required {
		name, wantObject := strings.CutSuffix(f, "{}")
		raw, ok := fields[name]
		if !ok {
			return key{}, &KeyError{problem: probMissingField, Type: typ, Field: name}
		}
		if wantObject {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil || obj == nil {
				return key{}, &KeyError{problem: probFieldNotObject, Type: typ, Field: name}
			}
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || strings.TrimSpace(s) == "" {
			return key{}, &KeyError{problem: probFieldNotString, Type: typ, Field: name}
		}
	}

	k := key{typ: typ, json: body}
	if typ != TypeServiceAccount {
		return k, nil
	}
	var pk string
	_ = json.Unmarshal(fields["private_key"], &pk) // checked above
	// Keys pasted through shells and YAML often carry the two characters `\` `n` instead of
	// newlines; Polyaxon replaces them, and so do we.
	if fixed := strings.ReplaceAll(pk, `\n`, "\n"); fixed != pk {
		pk = fixed
		enc, err := json.Marshal(pk)
		if err != nil {
			return key{}, &KeyError{problem: probBadPrivateKey, Type: typ, Field: "private_key"}
		}
		fields["private_key"] = enc
		out, err := json.Marshal(fields)
		if err != nil {
			return key{}, &KeyError{problem: probSyntax}
		}
		k.json = out
	}
	if err := checkPrivateKey(pk); err != nil {
		err.Type = typ
		return key{}, err
	}
	var project string
	if raw, ok := fields["project_id"]; ok && json.Unmarshal(raw, &project) == nil {
		k.projectID = strings.TrimSpace(project)
	}
	return k, nil
}

// checkPrivateKey checks that pk is a PEM block holding an RSA key in PKCS#8 or PKCS#1 form,
// the two forms Google's libraries parse.
func checkPrivateKey(pk string) *KeyError {
	block, _ := pem.Decode([]byte(strings.TrimSpace(pk)))
	if block == nil {
		return &KeyError{problem: probNotPEM, Field: "private_key"}
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	return &KeyError{problem: probBadPrivateKey, Field: "private_key"}
}

// jsonProblem turns a json.Unmarshal error on body (which starts lead bytes into data) into a
// KeyError. encoding/json's own messages quote the offending character, so they are not used.
func jsonProblem(data []byte, lead int, body []byte, err error) *KeyError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &KeyError{problem: probNotObject}
	}
	switch body[0] {
	case '/', '.', '~':
		return &KeyError{problem: probLooksLikePath}
	}
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return &KeyError{problem: probSyntax}
	}
	// syn.Offset counts the bytes read before the error was noticed; the culprit is the last.
	at := int(syn.Offset) - 1
	if at < 0 {
		at = 0
	}
	problem := probSyntax
	// At the end of input encoding/json either says "unexpected end" or, inside a string
	// escape or literal, complains about the space it feeds itself at EOF (body cannot end in
	// a real space: it is trimmed).
	eof := int(syn.Offset) >= len(body) &&
		(strings.Contains(syn.Error(), "unexpected end") || strings.Contains(syn.Error(), "' '"))
	switch {
	case eof:
		problem = probTruncated
		at = len(body)
	case body[at] == '\n' || body[at] == '\r':
		if strings.Contains(syn.Error(), "string literal") {
			problem = probRawNewline
		}
	case body[at] == '\'':
		problem = probSingleQuotes
	}
	off := lead + at
	line, col := lineColumn(data, off)
	return &KeyError{problem: problem, Line: line, Column: col, Offset: off}
}

// lineColumn gives the 1-based line and column (in bytes) of byte offset off in data.
func lineColumn(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}
