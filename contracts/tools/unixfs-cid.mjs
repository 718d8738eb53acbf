// Print the CID the reference JavaScript importer gives a file, configured as kubo's defaults
// for `ipfs add --cid-version=1`: 256 KiB chunks, raw leaves, balanced DAG of 174 links.
// Used by the test suite to cross-check apps/chain/cid.py.
import { createReadStream } from "node:fs";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const path = process.argv[2];
const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
};
let last;
for await (const entry of importer([{ content: createReadStream(path) }], new MemoryBlockstore(), options)) {
  last = entry;
}
console.log(last.cid.toString());
