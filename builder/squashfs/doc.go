// Package squashfs writes a squashfs 4.0 filesystem from a tar stream, in pure
// Go, without root privileges and deterministically: the same tar gives the
// same bytes whatever the number of workers, GOMAXPROCS or timing.
//
// It is the root filesystem writer of nodebake: the Linux kernel mounts what it
// writes at boot, unsquashfs (squashfs-tools 4.5+) and rdsquashfs
// (squashfs-tools-ng) read it back in the tests.
//
// # Pipeline
//
// Write reads the tar stream once. Regular file contents are cut into blocks
// of Options.BlockSize bytes; every full block is handed to a pool of
// Options.Workers compressors (one zstd encoder each, reused for every block),
// and a single writer goroutine puts the compressed blocks into the image in
// the order they were read (a sequence number per block and a small reorder
// ring), so the layout never depends on which worker finished first. Only a
// bounded number of block buffers exist (2×Workers+4 pairs of BlockSize
// bytes, plus a write buffer of max(1 MiB, 4×BlockSize)), so memory does not
// grow with file size; what stays in memory is metadata: one small record per
// inode, the block size list of every file (4 bytes per block), the names and
// a SHA-256 per distinct file. The inode, directory, fragment, id and xattr
// tables are built after the last tar entry.
//
// # Format choices
//
//   - Compression is zstd (compressor id 6) through
//     github.com/klauspost/compress/zstd, one frame per block, written as a
//     single segment (the frame window equals the block contents, never more
//     than the block size, which is what the kernel's decompressor reserves)
//     and without frame checksums. The compression options block (the level,
//     4 bytes) is written only when the level differs from 15, the default of
//     squashfs-tools, exactly like mksquashfs does. Levels 1..22 are accepted;
//     the encoder maps them onto its speed classes (1-2 fastest, 3-5 default,
//     6-9 better, 10+ best), so the same level gives sizes close to, not equal
//     to, libzstd's.
//   - Data blocks: a block made only of zero bytes is stored as a sparse block
//     (size 0, nothing written); a block that does not compress to fewer bytes
//     is stored raw with the uncompressed bit (1<<24) set.
//   - Tail ends: the last partial block of every file (and every file smaller
//     than a block) is packed into fragment blocks in tar order, like
//     mksquashfs does by default. Fragment blocks are never sparse.
//   - Duplicate files are detected by size and SHA-256 of the contents (like
//     mksquashfs, whose superblock flag 0x0040 is set): a file repeating an
//     earlier one gets its own inode pointing at the earlier blocks and tail
//     end. Its blocks have already been compressed and written when that is
//     known, so the writer moves back and overwrites them; if they reached
//     past the end of the finished filesystem, the zero padding covers them
//     (the only case where the padding exceeds the next 4 KiB boundary).
//     Hardlinks (tar TypeLink) share one inode whose link count is the number
//     of names pointing at it; the attributes of a hardlink entry are those
//     of its target.
//   - Metadata (inodes, directories, lookup tables, xattrs) is packed in 8 KiB
//     metadata blocks, zstd-compressed, raw when compression does not help.
//   - Inode numbers are assigned in the order inodes are written to the inode
//     table: a depth-first walk visiting the entries of each directory in
//     strcmp order, children before their directory, so the root directory is
//     the last inode. The root's parent field is inode count + 1 (like
//     mksquashfs).
//   - Inode types: the basic types are used unless the extended type is
//     needed: regular files become extended when they have more than one
//     link, xattrs, sparse blocks, a size or start of 4 GiB or more;
//     directories when they have xattrs, a directory index or a listing of
//     64 KiB or more; symlinks, devices and FIFOs when they have xattrs.
//   - Directory listings are sorted by byte order (strcmp), split into runs of
//     at most 256 entries sharing one inode metadata block and inode numbers
//     within ±32767 of the run's header; like mksquashfs a new run, recorded
//     in the directory index of the extended inode, starts whenever about
//     8 KiB of listing has been written since the last index point. The link
//     count of a directory is 2 plus its number of subdirectories.
//   - The id table holds every uid and gid once, in order of first use; the
//     xattr table stores values inline (no out-of-line values) and shares one
//     xattr id between inodes with identical xattr sets. Supported xattr name
//     spaces are user., trusted. and security. (PAX records
//     SCHILY.xattr.<name>); any other is an error.
//   - No NFS export table is written (the superblock says so); the tables
//     follow the data in the order the kernel checks: inodes, directories,
//     fragment table, id table, xattrs. The superblock's bytes-used is the
//     exact end of the last table; the image is zero-padded to a multiple of
//     4 KiB and that padded size is what Write returns.
//
// # Tar input
//
// Names are relative ("usr/bin/kubelet"); a leading "./" or "/" is stripped,
// and an entry "." or "./" describes the root directory itself (otherwise the
// root is 0755 0:0 with mtime Options.ModTime). A missing parent directory is
// created 0755 0:0 with mtime Options.ModTime. A hardlink must come after its
// target. When a path appears twice, the later entry replaces the earlier one
// (a directory replacing a directory only updates its attributes), like tar
// extraction. Modes keep setuid, setgid and sticky bits; uid, gid, mtime (from
// the header, clamped to the unsigned 32 bit range) and xattrs are kept.
// Errors name the offending entry.
package squashfs
