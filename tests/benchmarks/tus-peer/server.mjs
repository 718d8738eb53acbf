// The tus project's own Node server (@tus/server + @tus/file-store), as its README sets it up:
// the peer tests/benchmarks/upload.py measures StreamGate against. Usage: node server.mjs PORT DIR
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

const [port, directory] = process.argv.slice(2)
const server = new Server({ path: '/files', datastore: new FileStore({ directory }) })
server.listen({ host: '127.0.0.1', port: Number(port) }, () => console.log(`tus peer on ${port}`))
