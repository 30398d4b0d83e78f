package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// modulePath is the module whose packages' sources docs reads.
const modulePath = "github.com/nodebake/nodebake"

// docs holds the doc comments of the Go packages the spec's types come
// from, read from their sources.
type docs struct {
	root string
	pkgs map[string]*pkgDocs
}

type pkgDocs struct {
	types  map[string]string            // type name -> doc
	fields map[string]map[string]string // type name -> field name -> doc
	consts map[string]map[string]string // type name -> constant value -> doc
	names  map[string]map[string]string // type name -> constant value -> constant name
}

func newDocs(root string) *docs { return &docs{root: root, pkgs: map[string]*pkgDocs{}} }

// pkg parses the package with the import path p (in this module).
func (d *docs) pkg(p string) *pkgDocs {
	if pd, ok := d.pkgs[p]; ok {
		return pd
	}
	pd := &pkgDocs{types: map[string]string{}, fields: map[string]map[string]string{}, consts: map[string]map[string]string{}, names: map[string]map[string]string{}}
	d.pkgs[p] = pd
	rel, ok := strings.CutPrefix(p, modulePath)
	if !ok {
		return pd
	}
	dir := filepath.Join(d.root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return pd
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	fset := token.NewFileSet()
	for _, n := range names {
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			continue
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			switch gd.Tok {
			case token.TYPE:
				for _, sp := range gd.Specs {
					ts := sp.(*ast.TypeSpec)
					doc := ts.Doc
					if doc == nil && len(gd.Specs) == 1 {
						doc = gd.Doc
					}
					pd.types[ts.Name.Name] = text(doc)
					if st, ok := ts.Type.(*ast.StructType); ok {
						pd.fields[ts.Name.Name] = structDocs(st)
					}
				}
			case token.CONST:
				for _, sp := range gd.Specs {
					vs := sp.(*ast.ValueSpec)
					id, ok := vs.Type.(*ast.Ident)
					if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
						continue
					}
					lit, ok := vs.Values[0].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						continue
					}
					if pd.consts[id.Name] == nil {
						pd.consts[id.Name], pd.names[id.Name] = map[string]string{}, map[string]string{}
					}
					pd.consts[id.Name][v] = text(vs.Doc)
					pd.names[id.Name][v] = vs.Names[0].Name
				}
			}
		}
	}
	return pd
}

// structDocs returns the doc comment of each field of a struct. A field
// without one takes that of the field before it when that comment names
// it ("SHA256 and SHA512 are ...").
func structDocs(st *ast.StructType) map[string]string {
	out := map[string]string{}
	prevDoc := ""
	for _, f := range st.Fields.List {
		doc := text(f.Doc)
		for _, n := range f.Names {
			d := doc
			if d == "" && prevDoc != "" && mentions(prevDoc, n.Name) {
				d = prevDoc
			}
			out[n.Name] = d
			prevDoc = d
		}
	}
	return out
}

func mentions(doc, word string) bool {
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(word) + `\b`).MatchString(doc)
}

// text returns a comment's text as one paragraph per blank line, lines
// joined.
func text(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(g.Text()), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}

// typeDoc returns a type's doc comment.
func (d *docs) typeDoc(t reflect.Type) string {
	return d.pkg(t.PkgPath()).types[t.Name()]
}

// fieldDoc returns a struct field's doc comment with Go names made the
// spec's: the struct's field names become their YAML keys. A field
// without a comment takes its type's, its type's name made the field's.
func (d *docs) fieldDoc(t reflect.Type, sf reflect.StructField) string {
	doc := d.pkg(t.PkgPath()).fields[t.Name()][sf.Name]
	if doc == "" {
		ft := sf.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Name() != "" && ft.PkgPath() != "" {
			doc = d.typeDoc(ft)
			if rest, ok := strings.CutPrefix(doc, ft.Name()+" "); ok {
				if n, err := yamlName(sf); err == nil && n != "" {
					doc = "`" + n + "` " + rest
				}
			}
		}
	}
	return yamlNames(t, doc)
}

// yamlNames replaces the Go names of t's fields in doc with their YAML
// keys, in backquotes: "Exactly one of Content, Source, Link and Directory
// is set" becomes "Exactly one of `content`, `source`, `link` and
// `directory` is set". Names that are acronyms (URL, SHA256) are replaced
// only in the subject of the first sentence ("SHA256 and SHA512 are ..."):
// elsewhere they are more likely the word than the field.
func yamlNames(t reflect.Type, doc string) string {
	names := map[string]string{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if n, err := yamlName(sf); err == nil && n != "" && len(sf.Name) > 1 {
			names[sf.Name] = n
		}
	}
	// The subject: up to " is " or " are " in the first sentence, else
	// the first word.
	subject := strings.IndexAny(doc, " ,")
	sentence := strings.Index(doc, ". ")
	if sentence < 0 {
		sentence = len(doc)
	}
	for _, verb := range []string{" is ", " are "} {
		if i := strings.Index(doc, verb); i >= 0 && i < sentence && i > subject {
			subject = i
		}
	}
	word := regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)
	var b strings.Builder
	last := 0
	for _, loc := range word.FindAllStringIndex(doc, -1) {
		w := doc[loc[0]:loc[1]]
		n, ok := names[w]
		if !ok || strings.ToUpper(w) == w && loc[0] >= subject {
			continue
		}
		b.WriteString(doc[last:loc[0]] + "`" + n + "`")
		last = loc[1]
	}
	return b.String() + doc[last:]
}

// constDoc returns the doc comment of the constant of type typeName whose
// value is v, with its Go name replaced by the value.
func (d *docs) constDoc(typeName, v string) string {
	pd := d.pkg(modulePath + "/layers/spec")
	doc := pd.consts[typeName][v]
	if name := pd.names[typeName][v]; name != "" {
		doc = strings.Replace(doc, name+" ", "`"+v+"` ", 1)
	}
	return doc
}

// check reports the spec packages that could not be read: a generator run
// away from the sources would write a reference without descriptions.
func (d *docs) check() error {
	pd := d.pkg(modulePath + "/layers/spec")
	if pd.types["Spec"] == "" {
		return fmt.Errorf("no doc comment for spec.Spec under %s: run the generator in the repository", d.root)
	}
	return nil
}
