package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// payload decrypts an age file held in memory straight into one plaintext
// buffer. The header (parsing, HMAC, recipient stanzas, X25519 unwrap) is
// handled by filippo.io/age's DecryptHeader; the payload
// follows the age-encryption.org/v1 specification's STREAM construction:
//
//	payload    = nonce (16 bytes) || chunk_0 || ... || chunk_{n-1}
//	stream key = HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload")
//	chunk_i    = ChaCha20-Poly1305(stream key, nonce_i, plaintext_i), where
//	             plaintext_i is 64 KiB except in the last chunk, and
//	nonce_i    = uint88 big-endian i || 0x01 for the last chunk, 0x00 otherwise.
//
// The last chunk may be full, and is empty only if it is the only one. Since
// the ciphertext length is known, the plaintext length and the position of
// the last chunk are known before decrypting anything: truncation at a chunk
// boundary fails authentication (the new last chunk was sealed with flag 0),
// and so does any trailing data. age's own streaming reader copies every
// chunk three times through internal buffers; this saves those copies and
// lets Open hash the update chunk by chunk while it is in cache. Tests check
// it accepts and rejects exactly what age.Decrypt does.
type payload struct {
	aead   cipher.AEAD
	ct     []byte // the chunks, after the payload nonce
	chunks int
	size   int // plaintext bytes; chunk i holds plaintext [i*ageChunk, min((i+1)*ageChunk, size))
}

// openPayload parses and decrypts the header of sealed and lays out the
// payload. It decrypts no chunk and allocates nothing in proportion to the
// input.
func openPayload(sealed []byte, ids []age.Identity, maxHeader int64) (*payload, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("no identities: %w", ErrNotRecipient)
	}
	// The header ends with its MAC line, the first line starting "--- "
	// (stanza lines start with "-> " or are base64). DecryptHeader parses
	// exactly this prefix and checks its MAC, so a wrong split only fails.
	search := sealed[:min(int64(len(sealed)), maxHeader)]
	end := bytes.Index(search, []byte("\n--- "))
	nl := -1
	if end >= 0 {
		nl = bytes.IndexByte(search[end+1:], '\n')
	}
	if nl < 0 {
		if int64(len(sealed)) > maxHeader {
			return nil, fmt.Errorf("age header: no MAC line in the first %d bytes: %w", maxHeader, ErrTooLarge)
		}
		return nil, fmt.Errorf("age header: no MAC line: %w", ErrMalformed)
	}
	hdr := sealed[:end+1+nl+1]
	fileKey, err := age.DecryptHeader(hdr, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%v: %w", err, ErrNotRecipient)
		}
		return nil, fmt.Errorf("age header: %v: %w", err, ErrMalformed)
	}
	rest := sealed[len(hdr):]
	if len(rest) < ageNonceSize {
		return nil, fmt.Errorf("age payload: %d bytes, no room for the nonce: %w", len(rest), ErrMalformed)
	}
	nonce, ct := rest[:ageNonceSize], rest[ageNonceSize:]
	chunks, size, err := streamLayout(int64(len(ct)))
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("age payload key: %v: %w", err, ErrMalformed)
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("age payload key: %v: %w", err, ErrMalformed)
	}
	return &payload{aead: aead, ct: ct, chunks: int(chunks), size: int(size)}, nil
}

// streamLayout returns the chunk count and plaintext size of a STREAM
// ciphertext of n bytes, or ErrMalformed if no plaintext encrypts to
// exactly n bytes.
func streamLayout(n int64) (chunks, size int64, err error) {
	const encChunk = ageChunk + ageTagSize
	if n < ageTagSize {
		return 0, 0, fmt.Errorf("age payload: %d bytes of chunks, need at least %d: %w", n, ageTagSize, ErrMalformed)
	}
	chunks = (n + encChunk - 1) / encChunk
	size = n - chunks*ageTagSize
	want := max((size+ageChunk-1)/ageChunk, 1)
	if want != chunks {
		// Only an empty final chunk after a full one gets here.
		return 0, 0, fmt.Errorf("age payload: %d bytes is not a valid chunk sequence: %w", n, ErrMalformed)
	}
	return chunks, size, nil
}

// decrypt authenticates and decrypts chunk i, appending the plaintext to
// dst; with enough capacity in dst it decrypts in place there.
func (p *payload) decrypt(i int, dst []byte) ([]byte, error) {
	const encChunk = ageChunk + ageTagSize
	start := i * encChunk
	end := min(start+encChunk, len(p.ct))
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
	if i == p.chunks-1 {
		nonce[11] = 1
	}
	out, err := p.aead.Open(dst, nonce[:], p.ct[start:end], nil)
	if err != nil {
		return nil, fmt.Errorf("age payload chunk %d of %d fails authentication: %w", i, p.chunks, ErrMalformed)
	}
	return out, nil
}

// decryptAll decrypts every chunk and returns the plaintext.
func (p *payload) decryptAll() ([]byte, error) {
	plain := make([]byte, p.size)
	for i := range p.chunks {
		off := i * ageChunk
		if _, err := p.decrypt(i, plain[off:off]); err != nil {
			return nil, err
		}
	}
	return plain, nil
}
