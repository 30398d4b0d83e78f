// Package verity computes the dm-verity hash tree of a data image, in pure Go,
// in the on-disk format that veritysetup (cryptsetup) writes and reads: hash
// format 1, SHA-256, 4096-byte data and hash blocks, preceded by the
// veritysetup superblock. The same data, salt and UUID give the same bytes as
// `veritysetup format DATA HASH --salt=HEX --uuid=UUID`, and the same root
// hash, so the kernel (through veritysetup or systemd-veritysetup) can open
// what nodebake writes. The salt and UUID are the caller's: derived from the
// image seed they keep builds reproducible.
//
// # Layout of the hash device
//
//   - Bytes 0..511: the superblock (signature "verity\0\0", version 1, hash
//     type 1, UUID, "sha256", block sizes, number of data blocks, salt);
//     bytes 512..4095 are zero.
//   - From byte 4096: the hash tree, top level first. Level 0 holds the
//     digests SHA-256(salt ‖ data block) of every data block, 128 to a hash
//     block (a digest is 32 bytes, the rest of a hash block is zero); level
//     i holds the digests SHA-256(salt ‖ hash block) of the blocks of level
//     i−1; the top level is a single block. The root hash is SHA-256(salt ‖
//     top block). With a single data block there is no tree at all: the
//     root hash is the digest of that block and the hash device is the
//     superblock alone.
//
// HashSize gives the size of the hash device for a number of data blocks:
// about 1/127 of the data plus 4 KiB. Every byte of it is written (padding
// included), so the destination need not be zeroed first.
//
// # Padding rule
//
// The data must be a whole number of 4096-byte blocks: verity covers exactly
// DataBlocks·4096 bytes, and a partial last block could not be read through
// the verity device at all (veritysetup would leave it out). Pad the image
// with zero bytes up to the next multiple of 4096 before hashing; nodebake's
// squashfs writer already does. The partition holding the data may be
// larger: bytes past DataBlocks·4096 are not covered, and veritysetup and
// systemd read the number of blocks from the superblock.
//
// # Work and memory
//
// Format reads the data through an io.ReaderAt in groups of 128 data blocks
// (512 KiB, exactly the data behind one level-0 hash block), hashes the
// groups on Params.Workers goroutines and writes every level-0 hash block
// straight to its place on the hash device, so the writes of the
// destination are concurrent and never overlap, as io.WriterAt allows.
// Memory is one 512 KiB buffer per worker plus 32 bytes per group (64 KiB
// per GiB of data) for the level above.
//
// Writer hashes data as it is written (io.Writer), for a stream whose
// length is not known in advance. The place of level 0 on the hash device
// depends on the number of data blocks, so Writer keeps the level-0 hash
// blocks in memory until Finish: 32 bytes per data block (8 MiB per GiB of
// data) plus a 512 KiB buffer per worker. Prefer Format when the data can be
// read back.
package verity
