/**
 * Zip reader (host-side) for PyTorch checkpoints: central directory, STORED and DEFLATE entries,
 * ZIP64 (torch always writes a ZIP64 end-of-central-directory record; sizes and offsets move to
 * ZIP64 extra fields only past 4 GiB).
 *
 * Every offset and size is checked against the file length before it is used, so a corrupt or
 * truncated archive fails with a message naming the file and what is wrong, and a header that
 * declares more data than the file can hold fails before anything is allocated. torch writes its
 * local headers with bit 3 set (sizes in a trailing data descriptor, zero in the local header) and
 * pads them with an extra field so that the data is 64-byte aligned; sizes therefore come from the
 * central directory and the data offset from each local header's own name and extra lengths.
 */
import { inflateSync } from 'fflate';

export class ZipError extends Error {
  override name = 'ZipError';
}

export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: 0 | 8;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** Absolute offset of the (compressed) data in the file. */
  dataOffset: number;
}

export interface ZipOptions {
  /** Verify each entry's CRC-32 when it is read (default true). */
  checkCrc?: boolean;
  /** Largest uncompressed entry accepted, in bytes (default 4 GiB). */
  maxEntryBytes?: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** DEFLATE cannot expand data by more than about 1032:1; anything claiming more is corrupt. */
const MAX_DEFLATE_RATIO = 1032;

/** True when the bytes start like a zip archive (a local header or an empty archive's EOCD). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 4) return false;
  const sig = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24);
  return sig === SIG_LOCAL || sig === SIG_EOCD;
}

let crcTables: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, as in zip), slicing-by-8. */
export function crc32(data: Uint8Array): number {
  if (!crcTables) {
    crcTables = new Uint32Array(8 * 256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTables[n] = c >>> 0;
    }
    for (let n = 0; n < 256; n++)
      for (let k = 1; k < 8; k++) {
        const prev = crcTables[(k - 1) * 256 + n]!;
        crcTables[k * 256 + n] = (crcTables[prev & 0xff]! ^ (prev >>> 8)) >>> 0;
      }
  }
  const t = crcTables;
  let c = 0xffffffff;
  let i = 0;
  const n8 = data.length - (data.length % 8);
  for (; i < n8; i += 8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    c =
      t[7 * 256 + (a & 0xff)]! ^
      t[6 * 256 + ((a >>> 8) & 0xff)]! ^
      t[5 * 256 + ((a >>> 16) & 0xff)]! ^
      t[4 * 256 + (a >>> 24)]! ^
      t[3 * 256 + data[i + 4]!]! ^
      t[2 * 256 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export class ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly dv: DataView;
  private readonly checkCrc: boolean;

  constructor(
    readonly bytes: Uint8Array,
    readonly fileName: string,
    opts: ZipOptions = {},
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.checkCrc = opts.checkCrc ?? true;
    this.entries = this.parse(opts.maxEntryBytes ?? 2 ** 32);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Entry data: a view into the file for STORED entries, a new array for DEFLATE ones. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`no entry '${name}'`);
    const raw = this.bytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
    let out: Uint8Array;
    if (e.method === 0) {
      out = raw;
    } else {
      // One spare byte: an entry that inflates to more than it declares fills it and is caught.
      let inflated: Uint8Array;
      try {
        inflated = inflateSync(raw, { out: new Uint8Array(e.size + 1) });
      } catch (err) {
        this.fail(`entry '${name}': DEFLATE data is corrupt (${(err as Error).message})`);
      }
      if (inflated.length !== e.size)
        this.fail(
          `entry '${name}': inflates to ${inflated.length > e.size ? 'more than' : inflated.length} ` +
            `bytes, the central directory declares ${e.size}`,
        );
      out = inflated;
    }
    if (this.checkCrc) {
      const c = crc32(out);
      if (c !== e.crc32)
        this.fail(
          `entry '${name}': CRC-32 mismatch (data ${hex8(c)}, directory ${hex8(e.crc32)}): the file is corrupt`,
        );
    }
    return out;
  }

  private fail(msg: string): never {
    throw new ZipError(`${this.fileName}: ${msg}`);
  }

  private u16(o: number): number {
    return this.dv.getUint16(o, true);
  }

  private u32(o: number): number {
    return this.dv.getUint32(o, true);
  }

  private u64(o: number, what: string): number {
    const v = this.dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is not a usable file offset/size`);
    return Number(v);
  }

  private parse(maxEntryBytes: number): Map<string, ZipEntry> {
    const len = this.bytes.byteLength;
    if (len < 22)
      this.fail(`file is ${len} bytes, too short for a zip end-of-central-directory record (truncated?)`);
    // The EOCD record is the last 22 bytes plus a comment of up to 65535 bytes.
    let eocd = -1;
    for (let p = len - 22; p >= Math.max(0, len - 22 - U16_MAX); p--) {
      if (this.u32(p) === SIG_EOCD && p + 22 + this.u16(p + 20) === len) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0)
      this.fail('no zip end-of-central-directory record found: the file is truncated or not a zip archive');
    let disk = this.u16(eocd + 4);
    let cdDisk = this.u16(eocd + 6);
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    let cdLimit = eocd; // the central directory must end before this offset
    if (eocd >= 20 && this.u32(eocd - 20) === SIG_LOCATOR64) {
      const loc = eocd - 20;
      const e64 = this.u64(loc + 8, 'ZIP64 end-of-central-directory offset');
      if (e64 + 56 > loc)
        this.fail(`ZIP64 end-of-central-directory offset ${e64} lies outside the file (${len} bytes)`);
      if (this.u32(e64) !== SIG_EOCD64)
        this.fail(`no ZIP64 end-of-central-directory record at offset ${e64}: the file is corrupt`);
      const d64 = this.u32(e64 + 16);
      const cd64 = this.u32(e64 + 20);
      const count64 = this.u64(e64 + 32, 'ZIP64 entry count');
      const size64 = this.u64(e64 + 40, 'ZIP64 central directory size');
      const off64 = this.u64(e64 + 48, 'ZIP64 central directory offset');
      const agree = (v32: number, v64: number, max: number) => v32 === max || v32 === v64;
      if (
        !agree(count, count64, U16_MAX) ||
        !agree(cdSize, size64, U32_MAX) ||
        !agree(cdOffset, off64, U32_MAX)
      )
        this.fail('the end-of-central-directory and ZIP64 records disagree: the file is corrupt');
      disk = disk === U16_MAX ? d64 : disk;
      cdDisk = cdDisk === U16_MAX ? cd64 : cdDisk;
      count = count64;
      cdSize = size64;
      cdOffset = off64;
      cdLimit = e64;
    } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      this.fail('the end-of-central-directory record needs a ZIP64 record and there is none: corrupt');
    }
    if (disk !== 0 || cdDisk !== 0) this.fail('multi-disk (split) zip archives are not supported');
    if (cdOffset + cdSize > cdLimit)
      this.fail(
        `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the archive data ` +
          `(${cdLimit}): the file is truncated or corrupt`,
      );
    if (count * 46 > cdSize)
      this.fail(`${count} entries cannot fit in a central directory of ${cdSize} bytes: corrupt`);

    const entries = new Map<string, ZipEntry>();
    const cdEnd = cdOffset + cdSize;
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdEnd || this.u32(p) !== SIG_CENTRAL)
        this.fail(`central directory entry ${i} at offset ${p} is malformed: corrupt`);
      const flags = this.u16(p + 8);
      const method = this.u16(p + 10);
      const crc = this.u32(p + 16);
      let csize = this.u32(p + 20);
      let size = this.u32(p + 24);
      const nlen = this.u16(p + 28);
      const xlen = this.u16(p + 30);
      const clen = this.u16(p + 32);
      let diskStart = this.u16(p + 34);
      let lho = this.u32(p + 42);
      const next = p + 46 + nlen + xlen + clen;
      if (next > cdEnd) this.fail(`central directory entry ${i} runs past the directory: corrupt`);
      const nameBytes = this.bytes.subarray(p + 46, p + 46 + nlen);
      const name = decodeName(nameBytes, flags);
      const where = `entry '${name}'`;
      if (name === undefined || name.length === 0 || name.includes('\0'))
        this.fail(`central directory entry ${i} has an invalid name`);
      if (entries.has(name)) this.fail(`${where} appears twice in the central directory`);
      if (size === U32_MAX || csize === U32_MAX || lho === U32_MAX || diskStart === U16_MAX) {
        // ZIP64 extended information: the fields that overflowed, in this order.
        let x = p + 46 + nlen;
        const xEnd = x + xlen;
        let found = false;
        while (x + 4 <= xEnd) {
          const id = this.u16(x);
          const sz = this.u16(x + 2);
          if (x + 4 + sz > xEnd) break;
          if (id === 0x0001) {
            let q = x + 4;
            const take = (what: string): number => {
              if (q + 8 > x + 4 + sz) this.fail(`${where}: ZIP64 extra field lacks the ${what}`);
              const v = this.u64(q, `${where} ZIP64 ${what}`);
              q += 8;
              return v;
            };
            if (size === U32_MAX) size = take('uncompressed size');
            if (csize === U32_MAX) csize = take('compressed size');
            if (lho === U32_MAX) lho = take('local header offset');
            if (diskStart === U16_MAX) {
              if (q + 4 > x + 4 + sz) this.fail(`${where}: ZIP64 extra field lacks the disk number`);
              diskStart = this.u32(q);
            }
            found = true;
            break;
          }
          x += 4 + sz;
        }
        if (!found) this.fail(`${where}: sizes need a ZIP64 extra field and there is none`);
      }
      if (diskStart !== 0)
        this.fail(`${where} starts on disk ${diskStart}: split archives are not supported`);
      if (flags & 0x41) this.fail(`${where} is encrypted: not supported`);
      if (method !== 0 && method !== 8)
        this.fail(
          `${where} uses compression method ${method}; only STORED (0) and DEFLATE (8) are supported`,
        );
      if (method === 0 && csize !== size)
        this.fail(`${where} is STORED but declares ${size} bytes with ${csize} stored bytes`);
      if (size > maxEntryBytes)
        this.fail(`${where} declares ${size} bytes, more than the ${maxEntryBytes}-byte limit`);
      if (method === 8 && size > csize * MAX_DEFLATE_RATIO + 1024)
        this.fail(
          `${where} declares ${size} bytes from ${csize} DEFLATE bytes, more than DEFLATE can expand`,
        );
      // Local header: its own name/extra lengths decide where the data starts.
      if (lho + 30 > cdOffset)
        this.fail(`${where}: local header offset ${lho} lies outside the entry data region (truncated?)`);
      if (this.u32(lho) !== SIG_LOCAL)
        this.fail(`${where}: no local header at offset ${lho}: the file is corrupt`);
      const lflags = this.u16(lho + 6);
      const lmethod = this.u16(lho + 8);
      const lnlen = this.u16(lho + 26);
      const lxlen = this.u16(lho + 28);
      if (lmethod !== method)
        this.fail(`${where}: local header method ${lmethod} differs from the directory's ${method}`);
      if (
        lnlen !== nlen ||
        lho + 30 + lnlen > cdOffset ||
        !sameBytes(this.bytes.subarray(lho + 30, lho + 30 + lnlen), nameBytes)
      )
        this.fail(`${where}: the local header names a different entry: the file is corrupt`);
      if (!(lflags & 0x08)) {
        const lcrc = this.u32(lho + 14);
        const lcs = this.u32(lho + 18);
        const ls = this.u32(lho + 22);
        if (lcrc !== crc || (lcs !== U32_MAX && lcs !== csize) || (ls !== U32_MAX && ls !== size))
          this.fail(`${where}: local header sizes/CRC differ from the central directory: corrupt`);
      }
      const dataOffset = lho + 30 + lnlen + lxlen;
      if (dataOffset + csize > cdOffset)
        this.fail(
          `${where}: data [${dataOffset}, ${dataOffset + csize}) runs past the entry data region ` +
            `(${cdOffset} bytes): the file is truncated or corrupt`,
        );
      entries.set(name, {
        name,
        method,
        flags,
        crc32: crc,
        compressedSize: csize,
        size,
        localHeaderOffset: lho,
        dataOffset,
      });
      p = next;
    }
    // Entries must not overlap (an overlapping layout is a corruption or a zip bomb).
    const spans = [...entries.values()].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    for (let i = 1; i < spans.length; i++) {
      const a = spans[i - 1]!;
      const b = spans[i]!;
      if (b.localHeaderOffset < a.dataOffset + a.compressedSize)
        this.fail(`entries '${a.name}' and '${b.name}' overlap: the file is corrupt`);
    }
    return entries;
  }
}

function hex8(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeName(b: Uint8Array, flags: number): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    if (flags & 0x800) return undefined; // declared UTF-8 but is not
    return String.fromCharCode(...b); // legacy code page: keep the bytes as Latin-1
  }
}
