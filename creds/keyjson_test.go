package creds

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestLoadKeyJSON(t *testing.T) {
	sa := saKey(nil)
	escaped := saKey(map[string]any{"private_key": strings.ReplaceAll(testPEM(), "\n", `\n`)})
	cases := []struct {
		name    string
		in      []byte
		typ     string
		project string
		same    bool // the output is the trimmed input, byte for byte

		problem           keyProblem
		field             string
		line, col, offset int
	}{
		{name: "service account", in: sa, typ: TypeServiceAccount, project: "proj-from-key", same: true},
		{name: "authorized user", in: userKey(nil), typ: TypeAuthorizedUser, same: true},
		{name: "external account", in: extKey(nil), typ: TypeExternalAccount, same: true},
		{name: "surrounding whitespace and a BOM", in: append(append([]byte("\xEF\xBB\xBF \r\n\t"), sa...), "\n\n"...),
			typ: TypeServiceAccount, project: "proj-from-key", same: true},
		{name: "escaped newlines in private_key are fixed", in: escaped, typ: TypeServiceAccount, project: "proj-from-key"},
		{name: "private key in PKCS#1 form", in: saKey(map[string]any{"private_key": pkcs1PEM()}),
			typ: TypeServiceAccount, project: "proj-from-key", same: true},
		{name: "no project_id", in: saKey(map[string]any{"project_id": nil}), typ: TypeServiceAccount, same: true},

		{name: "empty", in: nil, problem: probEmpty},
		{name: "blank", in: []byte(" \n\t"), problem: probEmpty},
		{name: "too large", in: bytes.Repeat([]byte(" "), maxFileSize+1), problem: probTooLarge},
		{name: "syntax error position is in the original input", in: []byte("\n\n  {\"type\": x}"),
			problem: probSyntax, line: 3, col: 12, offset: 13},
		{name: "position counts a BOM", in: []byte("\xEF\xBB\xBF{,}"), problem: probSyntax, line: 1, col: 5, offset: 4},
		{name: "truncated after a key", in: []byte(`{"type"`), problem: probTruncated, line: 1, col: 8, offset: 7},
		{name: "truncated inside an escape", in: []byte(`{"type": "a\`), problem: probTruncated, line: 1, col: 13, offset: 12},
		{name: "raw line break in a string", in: []byte("{\"a\": \"x\ny\"}"), problem: probRawNewline, line: 1, col: 9, offset: 8},
		{name: "raw CR in a string", in: []byte("{\"a\": \"x\ry\"}"), problem: probRawNewline, line: 1, col: 9, offset: 8},
		{name: "single quotes", in: []byte(`{'type': 'service_account'}`), problem: probSingleQuotes, line: 1, col: 2, offset: 1},
		{name: "absolute path", in: []byte("/etc/gcs/key.json"), problem: probLooksLikePath},
		{name: "relative path", in: []byte("./key.json"), problem: probLooksLikePath},
		{name: "array", in: []byte(`[1]`), problem: probNotObject},
		{name: "string", in: []byte(`"service_account"`), problem: probNotObject},
		{name: "null", in: []byte(`null`), problem: probNotObject},
		{name: "no type", in: []byte(`{}`), problem: probNoType},
		{name: "type null", in: []byte(`{"type": null}`), problem: probUnknownType},
		{name: "type number", in: []byte(`{"type": 1}`), problem: probTypeNotString},
		{name: "unknown type", in: []byte(`{"type": "impersonated_service_account"}`), problem: probUnknownType},
		{name: "service account missing client_email", in: saKey(map[string]any{"client_email": nil}),
			problem: probMissingField, field: "client_email"},
		{name: "client_email not a string", in: saKey(map[string]any{"client_email": 3}),
			problem: probFieldNotString, field: "client_email"},
		{name: "private_key not PEM", in: saKey(map[string]any{"private_key": "abc"}),
			problem: probNotPEM, field: "private_key"},
		{name: "private_key not a key", in: saKey(map[string]any{"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
			problem: probBadPrivateKey, field: "private_key"},
		{name: "authorized user missing client_secret", in: userKey(map[string]any{"client_secret": nil}),
			problem: probMissingField, field: "client_secret"},
		{name: "external account missing audience", in: extKey(map[string]any{"audience": nil}),
			problem: probMissingField, field: "audience"},
		{name: "external account credential_source null", in: extKey(map[string]any{"credential_source": json.RawMessage("null")}),
			problem: probFieldNotObject, field: "credential_source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := loadKeyJSON(tc.in)
			if tc.problem != 0 {
				var ke *KeyError
				if !errors.As(err, &ke) {
					t.Fatalf("loadKeyJSON error = %v, want a *KeyError", err)
				}
				if ke.problem != tc.problem || ke.Field != tc.field {
					t.Errorf("got problem %d field %q (%v), want problem %d field %q", ke.problem, ke.Field, err, tc.problem, tc.field)
				}
				if ke.Line != tc.line || ke.Column != tc.col || ke.Offset != tc.offset {
					t.Errorf("position = line %d col %d byte %d, want %d %d %d", ke.Line, ke.Column, ke.Offset, tc.line, tc.col, tc.offset)
				}
				assertNoLeak(t, "error", err)
				return
			}
			if err != nil {
				t.Fatalf("loadKeyJSON: %v", err)
			}
			if k.typ != tc.typ || k.projectID != tc.project {
				t.Errorf("got type %q project %q, want %q %q", k.typ, k.projectID, tc.typ, tc.project)
			}
			trimmed := bytes.TrimSpace(bytes.TrimPrefix(tc.in, utf8BOM))
			if tc.same && !bytes.Equal(k.json, trimmed) {
				t.Errorf("key JSON was rewritten although nothing needed fixing")
			}
			var in, out map[string]any
			if err := json.Unmarshal(trimmed, &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(k.json, &out); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			if tc.typ == TypeServiceAccount {
				if pk, _ := out["private_key"].(string); strings.Contains(pk, `\n`) || !strings.Contains(pk, "\n") {
					t.Errorf("private_key still has escaped newlines")
				}
				delete(in, "private_key")
				delete(out, "private_key")
			}
			if len(in) != len(out) {
				t.Errorf("fields changed: %d in, %d out", len(in), len(out))
			}
			for f := range in {
				if !jsonEqual(in[f], out[f]) {
					t.Errorf("field %q changed", f)
				}
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestKeyErrorMessages(t *testing.T) {
	// Every problem has a message and advice, and messages are one line.
	for p := probEmpty; p <= probBadPrivateKey; p++ {
		txt, ok := keyProblemText[p]
		if !ok || txt.what == "" || txt.fix == "" {
			t.Errorf("problem %d has no message or advice", p)
		}
		msg := (&KeyError{problem: p}).Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("problem %d message is not one line: %q", p, msg)
		}
	}
	if len(keyProblemText) != int(probBadPrivateKey) {
		t.Errorf("keyProblemText has %d entries, want %d", len(keyProblemText), probBadPrivateKey)
	}
}

// allKeyMessages is every message a KeyError can render, with the position left out: all
// problems with every known field name and type.
func allKeyMessages() map[string]bool {
	fields := []string{"", "private_key"}
	types := []string{""}
	for typ, fs := range requiredFields {
		types = append(types, typ)
		for _, f := range fs {
			fields = append(fields, strings.TrimSuffix(f, "{}"))
		}
	}
	out := map[string]bool{}
	for p := range keyProblemText {
		for _, f := range fields {
			for _, typ := range types {
				out[(&KeyError{problem: p, Field: f, Type: typ}).Error()] = true
			}
		}
	}
	return out
}

// positionText matches the only variable part of a KeyError message.
var positionText = regexp.MustCompile(` at line [1-9][0-9]*, column [1-9][0-9]* \(byte [0-9]+\)`)

// FuzzLoadKeyJSON checks that loadKeyJSON never panics, that its errors are built only from
// constants (so cannot echo the input), and that what it accepts it accepts again unchanged.
func FuzzLoadKeyJSON(f *testing.F) {
	// Seeds beyond testdata/fuzz/FuzzLoadKeyJSON: a real key needs the generated RSA key.
	f.Add(saKey(nil))
	f.Add(saKey(map[string]any{"private_key": strings.ReplaceAll(testPEM(), "\n", `\n`)}))
	f.Add(userKey(nil))
	f.Add(extKey(nil))
	messages := allKeyMessages()
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := loadKeyJSON(data)
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error is %T, not *KeyError: %v", err, err)
			}
			if _, ok := keyProblemText[ke.problem]; !ok {
				t.Fatalf("unknown problem %d", ke.problem)
			}
			if ke.Offset < 0 || ke.Offset > len(data) || (ke.Line > 0) != (ke.Column > 0) {
				t.Fatalf("bad position line %d col %d byte %d for %d bytes", ke.Line, ke.Column, ke.Offset, len(data))
			}
			// The message, without its position, must be one of the constant messages: then
			// no byte of the input can be in it.
			msg := err.Error()
			if ke.Line > 0 {
				msg = positionText.ReplaceAllString(msg, "")
			}
			if !messages[msg] {
				t.Fatalf("error message is not made of constants: %q", err)
			}
			return
		}
		if _, ok := requiredFields[k.typ]; !ok {
			t.Fatalf("accepted unknown type %q", k.typ)
		}
		if !json.Valid(k.json) {
			t.Fatalf("accepted key is not valid JSON")
		}
		k2, err := loadKeyJSON(k.json)
		if err != nil {
			t.Fatalf("output is not accepted again: %v", err)
		}
		if k2.typ != k.typ || k2.projectID != k.projectID || !bytes.Equal(k2.json, k.json) {
			t.Fatalf("loading the output again changed it")
		}
	})
}
