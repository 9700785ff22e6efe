// A minimal paged, append-only B+-tree on SSD mapping node id -> location (offset, length) in a
// leaf file: the address-translation tree (ATT) ChronicleDB keeps on flash, which the paper
// replaces with a flat PMem array (004 §4.2, Fig. 7). Used only by the `translation` bench.
//
// Shape, as the paper describes the ATT: node ids are consecutive from 0, so every page covers a
// fixed id range - a leaf page holds ENTRIES_PER_PAGE translations, an inner page the page numbers
// of ENTRIES_PER_PAGE children - and the position of an entry is computed, never searched. The
// right flank (the newest leaf and its ancestors) lives in DRAM; a full leaf is appended to the
// file and its page number goes up into its parent, and so on up (an insert may write h pages).
//
// Checkpoint = whenever a leaf page is appended: the DRAM inner flank pages are written to their
// fixed slots (pages 1..MAX_HEIGHT) and the superblock (page 0: height, durable count, root) after
// them, then one fdatasync. Translations after the durable count - at most one leaf page's worth -
// are lost in a crash and must be re-derived by rescanning the leaf file (the caller's job, as for
// the PMem array's last batch). Recovery reads the superblock and the flank pages.
//
// Pages are 32 KiB (the paper's storage block). There is no page cache beyond the flank: a lookup
// below the flank reads each page on its path with one pread (the OS page cache, which this
// machine cannot drop, still serves those reads from memory).
//
// Entry (8 bytes, as the PMem slot): u32 offset low bits; u32 bits 0..7 offset bits 32..39, bits
// 8..31 length. An inner entry is a u32 page number (and a zero word).

import { closeSync, fdatasyncSync, openSync, readSync, writeSync } from 'node:fs';

export const PAGE_BYTES = 32 * 1024;
const ENTRY_BYTES = 8;
const ENTRIES_PER_PAGE = PAGE_BYTES / ENTRY_BYTES;
const MAX_HEIGHT = 6;
const FIRST_DATA_PAGE = 1 + MAX_HEIGHT;
const SUPER_MAGIC = 0x41545431; // "ATT1"

export interface Location {
  readonly offset: number;
  readonly length: number;
}

export class TranslationBTree {
  /** flank[0] is the DRAM leaf, flank[l] the inner page at level l; their entry counts in `fill`. */
  private readonly flank: DataView[] = [];
  private readonly fill: number[] = [];
  private count = 0;
  private durable = 0;
  private nextPage: number;
  private readonly pageBuffer = new Uint8Array(PAGE_BYTES);
  private readonly pageView = new DataView(this.pageBuffer.buffer);
  private readonly pageWrites = { pages: 0, syncs: 0 };

  private constructor(
    private readonly fd: number,
    nextPage: number,
  ) {
    this.nextPage = nextPage;
  }

  static create(path: string): TranslationBTree {
    const tree = new TranslationBTree(openSync(path, 'w+'), FIRST_DATA_PAGE);
    tree.flank.push(newPage());
    tree.fill.push(0);
    tree.checkpoint();
    return tree;
  }

  /** Opens after a crash or close: reads the superblock and the inner flank; the DRAM leaf restarts empty at the durable count. */
  static recover(path: string): TranslationBTree {
    const fd = openSync(path, 'r+');
    const superblock = readPage(fd, 0);
    if (superblock.getUint32(0, true) !== SUPER_MAGIC) throw new Error(`${path}: not a translation tree`);
    const height = superblock.getUint32(4, true);
    const tree = new TranslationBTree(fd, superblock.getUint32(16, true));
    tree.durable = tree.count = superblock.getUint32(8, true);
    tree.flank.push(newPage());
    tree.fill.push(0);
    for (let level = 1; level < height; level++) {
      tree.flank.push(readPage(fd, level));
      tree.fill.push(superblock.getUint32(20 + 4 * level, true));
    }
    return tree;
  }

  /** Translations that survive a crash now. */
  get durableCount(): number {
    return this.durable;
  }

  get writes(): { readonly pages: number; readonly syncs: number } {
    return this.pageWrites;
  }

  /** Sets the translation of the next node id (ids arrive in order, as leaves are written). */
  append(location: Location): void {
    const leaf = this.flank[0]!;
    const slot = this.fill[0]!;
    writeEntry(leaf, slot * ENTRY_BYTES, location);
    this.fill[0] = slot + 1;
    this.count++;
    if (slot + 1 === ENTRIES_PER_PAGE) {
      this.push(0);
      this.checkpoint();
    }
  }

  get(id: number): Location | undefined {
    if (id >= this.count) return undefined;
    // Walk down from the top flank level; a child is in the flank when it is the newest at its level.
    const height = this.flank.length;
    let page = this.flank[height - 1]!;
    let onFlank = true;
    for (let level = height - 1; level > 0; level--) {
      const slot = Math.floor(id / ENTRIES_PER_PAGE ** level) % ENTRIES_PER_PAGE;
      if (onFlank && slot === this.fill[level]) {
        page = this.flank[level - 1]!; // the child still in DRAM
      } else {
        onFlank = false;
        readSync(this.fd, this.pageBuffer, 0, PAGE_BYTES, page.getUint32(slot * ENTRY_BYTES, true) * PAGE_BYTES);
        page = this.pageView;
      }
    }
    return readEntry(page, (id % ENTRIES_PER_PAGE) * ENTRY_BYTES);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Appends the full flank page at `level` and records it in its parent (growing a root if needed). */
  private push(level: number): void {
    const pageNumber = this.nextPage++;
    writePage(this.fd, pageNumber, this.flank[level]!);
    this.pageWrites.pages++;
    this.flank[level] = newPage();
    this.fill[level] = 0;
    if (level + 1 === this.flank.length) {
      if (this.flank.length === MAX_HEIGHT) throw new RangeError('translation tree is full');
      this.flank.push(newPage());
      this.fill.push(0);
    }
    const parent = this.flank[level + 1]!;
    const slot = this.fill[level + 1]!;
    parent.setUint32(slot * ENTRY_BYTES, pageNumber, true);
    this.fill[level + 1] = slot + 1;
    if (slot + 1 === ENTRIES_PER_PAGE) this.push(level + 1);
  }

  /** Writes the inner flank and the superblock, then one fdatasync: everything appended so far (but the DRAM leaf) is durable. */
  private checkpoint(): void {
    const height = this.flank.length;
    for (let level = 1; level < height; level++) writePage(this.fd, level, this.flank[level]!);
    const superblock = newPage();
    superblock.setUint32(0, SUPER_MAGIC, true);
    superblock.setUint32(4, height, true);
    superblock.setUint32(8, this.count, true);
    superblock.setUint32(16, this.nextPage, true);
    for (let level = 1; level < height; level++) superblock.setUint32(20 + 4 * level, this.fill[level]!, true);
    writePage(this.fd, 0, superblock);
    fdatasyncSync(this.fd);
    this.pageWrites.pages += height;
    this.pageWrites.syncs++;
    this.durable = this.count;
  }
}

function newPage(): DataView {
  return new DataView(new ArrayBuffer(PAGE_BYTES));
}

function readPage(fd: number, pageNumber: number): DataView {
  const bytes = new Uint8Array(PAGE_BYTES);
  readSync(fd, bytes, 0, PAGE_BYTES, pageNumber * PAGE_BYTES);
  return new DataView(bytes.buffer);
}

function writePage(fd: number, pageNumber: number, page: DataView): void {
  writeSync(fd, new Uint8Array(page.buffer), 0, PAGE_BYTES, pageNumber * PAGE_BYTES);
}

function writeEntry(page: DataView, at: number, location: Location): void {
  page.setUint32(at, location.offset % 2 ** 32, true);
  page.setUint32(at + 4, Math.floor(location.offset / 2 ** 32) | (location.length << 8), true);
}

function readEntry(page: DataView, at: number): Location {
  const high = page.getUint32(at + 4, true);
  return { offset: (high & 0xff) * 2 ** 32 + page.getUint32(at, true), length: high >>> 8 };
}
