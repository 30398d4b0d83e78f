package squashfs

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strings"
)

// paxXattrPrefix is how PAX tar headers carry extended attributes.
const paxXattrPrefix = "SCHILY.xattr."

// xattrPrefix returns the squashfs prefix id of an xattr name and the name
// without its prefix, or -1 when squashfs cannot store the name space.
func xattrPrefix(name string) (int, string) {
	for i, p := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return i, name[len(p):]
		}
	}
	return -1, ""
}

// encodeXattrs turns the xattrs found in PAX records into the squashfs
// key/value pair encoding (inline values), sorted by name. It returns "" and
// 0 when there are none. Names in name spaces squashfs cannot store are
// passed to dropped and left out.
func encodeXattrs(pax map[string]string, dropped func(name string)) (string, uint32, error) {
	var names []string
	for k := range pax {
		if strings.HasPrefix(k, paxXattrPrefix) {
			names = append(names, k[len(paxXattrPrefix):])
		}
	}
	if len(names) == 0 {
		return "", 0, nil
	}
	sort.Strings(names)
	var b []byte
	var count uint32
	for _, name := range names {
		typ, key := xattrPrefix(name)
		if typ < 0 {
			dropped(name)
			continue
		}
		count++
		val := pax[paxXattrPrefix+name]
		if len(key) > math.MaxUint16 || len(val) > math.MaxInt32 {
			return "", 0, errors.New("xattr too large")
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(typ))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
		b = append(b, key...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
		b = append(b, val...)
	}
	return string(b), count, nil
}
