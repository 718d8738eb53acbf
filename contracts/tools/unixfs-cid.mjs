// Print the CID the reference JavaScript importer gives a file, configured as kubo's defaults
// for `ipfs add --cid-version=1`: 256 KiB chunks, raw leaves, balanced DAG of 174 links.
// Used by the test suite to cross-check apps/content/cid.py. Optional arguments after the path
// shrink the chunk size and the links per node, to check deep trees with small files.
import { createReadStream } from "node:fs";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const path = process.argv[2];
const chunkSize = Number(process.argv[3] ?? 262144);
const maxChildrenPerNode = Number(process.argv[4] ?? 174);
const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize }),
  layout: balanced({ maxChildrenPerNode }),
};
let last;
for await (const entry of importer([{ content: createReadStream(path) }], new MemoryBlockstore(), options)) {
  last = entry;
}
console.log(last.cid.toString());
