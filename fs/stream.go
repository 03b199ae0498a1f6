package fs

// Streamed uploads: a new or truncated file written in order from offset 0 is fed, write by
// write, to a transfer.PartWriter (staging.stream, made by vfs.Uploader.NewStream). Once the
// file reaches the compose threshold its completed parts upload in the background while it is
// written, at most Upload.Workers parts in flight for the whole filesystem (FS.partSlots);
// sync hands the writer to vfs.Uploader.Send, which commits it: only the tail part and the
// compose are left, under the staged file's generation precondition and with the CRC32C of
// the content as it was written. Any other write, a truncate or an unlink aborts the writer
// (its parts are deleted in the background) and sync uploads the staged file as usual; so
// does a failed commit. The parts, compose tree and cleanup are transfer's (see its
// PartWriter); this file only decides when a file streams.

// streaming reports whether uploads of big files start while they are written.
func (f *FS) streaming() bool {
	return !f.opts.ReadOnly && f.opts.Upload.ComposeThreshold >= 0
}
