// Drives the JS REST client @nftstorage/ipfs-cluster (5.0.1) against a
// pincluster REST API (see ../shared/INTEROP.md §4). Run by jsclient_test.go:
//   CLUSTER_URL=http://127.0.0.1:N CLUSTER_USER=u CLUSTER_PASS=p \
//   JSCLIENT=/path/to/node_modules/@nftstorage/ipfs-cluster/src/index.js \
//   node --test --test-reporter=tap jsclient.test.mjs
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'

const { Cluster, version } = await import(pathToFileURL(process.env.JSCLIENT).href)

const url = process.env.CLUSTER_URL
const auth = 'Basic ' + Buffer.from(`${process.env.CLUSTER_USER}:${process.env.CLUSTER_PASS}`).toString('base64')
const cluster = new Cluster(url, { headers: { Authorization: auth } })

// --- tiny CID and CAR helpers (no dependencies) ---
const B32 = 'abcdefghijklmnopqrstuvwxyz234567'
function base32 (bytes) {
  let bits = 0; let value = 0; let out = ''
  for (const b of bytes) {
    value = (value << 8) | b; bits += 8
    while (bits >= 5) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5 }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31]
  return out
}
function rawCid (data) {
  const digest = createHash('sha256').update(data).digest()
  const bytes = Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), digest])
  return { bytes, string: 'b' + base32(bytes) }
}
function varint (n) {
  const out = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return Buffer.from(out)
}
function car (blocks) {
  const root = rawCid(blocks[0])
  const link = Buffer.concat([Buffer.from([0x00]), root.bytes])
  const header = Buffer.concat([
    Buffer.from([0xa2, 0x65]), Buffer.from('roots'), Buffer.from([0x81, 0xd8, 0x2a, 0x58, link.length]), link,
    Buffer.from([0x67]), Buffer.from('version'), Buffer.from([0x01])
  ])
  const parts = [varint(header.length), header]
  for (const b of blocks) {
    const c = rawCid(b).bytes
    parts.push(varint(c.length + b.length), c, b)
  }
  return { root: root.string, bytes: Buffer.concat(parts), size: blocks.reduce((n, b) => n + b.length, 0) }
}
const freshCid = () => rawCid(randomBytes(32)).string

test('version: static function and method', async () => {
  const v1 = await version(cluster)
  const v2 = await cluster.version()
  assert.equal(typeof v1, 'string')
  assert.ok(v1.length > 0)
  assert.equal(v1, v2)
})

test('add a file', async () => {
  const res = await cluster.add(new File(['foo'], 'foo.txt'))
  assert.equal(res.cid, 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy')
  assert.equal(Number(res.size), 3)
  assert.equal(res.name, 'foo.txt')
})

test('add a CAR blob as a plain file', async () => {
  const c = car([Buffer.from('plain ' + Date.now())])
  const res = await cluster.add(new Blob([c.bytes]))
  assert.equal(typeof res.cid, 'string')
  assert.notEqual(res.cid, c.root, 'imported as UnixFS, not as a CAR')
  assert.equal(Number(res.size), c.bytes.length)
})

test('addDirectory', async () => {
  const res = await cluster.addDirectory([new File(['foo'], 'foo.txt'), new File(['bar'], 'bar.txt')])
  assert.ok(Array.isArray(res))
  assert.equal(res.length, 3)
  const dir = res[res.length - 1]
  assert.equal(dir.name, '')
  assert.equal(dir.cid, 'bafybeidhbfwu4j2zckkqd42azgxm7hlvjjqj7dunvv7o7c3avyrhgtvppm')
  assert.equal(Number(dir.size), 112)
  assert.equal(res[0].cid, 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy')
  assert.equal(res[1].cid, 'bafkreih43yvs5w5fnp2aqya7w4q75g24gogrb3sct2qe7lsvcg3i7p4pxe')
})

test('addCAR', async () => {
  const c = car([Buffer.from('car root ' + Date.now()), Buffer.from('second block')])
  const res = await cluster.addCAR(new Blob([c.bytes]))
  assert.equal(res.cid, c.root)
  assert.equal(Number(res.bytes), c.size)
})

test('pin with name and metadata, read back with allocation', async () => {
  const cid = freshCid()
  const pin = await cluster.pin(cid, { name: 'js-pin', metadata: { app: 'jsclient', n: '1' } })
  assert.equal(pin.cid, cid)
  assert.equal(pin.name, 'js-pin')
  const alloc = await cluster.allocation(cid)
  assert.equal(alloc.cid, cid)
  assert.equal(alloc.name, 'js-pin')
  assert.deepEqual(alloc.metadata, { app: 'jsclient', n: '1' })
  assert.ok(Array.isArray(alloc.allocations))
  assert.equal(alloc.mode, 'recursive')
})

test('status', async () => {
  const { cid } = await cluster.add(new File(['status ' + Date.now()], 's.txt'))
  const st = await cluster.status(cid)
  assert.equal(st.cid, cid)
  const entries = Object.values(st.peerMap)
  assert.ok(entries.length > 0)
  for (const e of entries) {
    assert.ok(['pinning', 'pinned', 'pin_queued'].includes(e.status), e.status)
    assert.equal(typeof e.ipfsPeerId, 'string')
    assert.ok(e.ipfsPeerId.length > 0)
    assert.ok(e.timestamp instanceof Date)
  }
  const local = await cluster.status(cid, { local: true })
  assert.equal(local.cid, cid)
})

test('recover', async () => {
  const { cid } = await cluster.add(new File(['recover ' + Date.now()], 'r.txt'))
  const st = await cluster.recover(cid)
  assert.equal(st.cid, cid)
  assert.ok(Object.keys(st.peerMap).length > 0)
})

test('unpin', async () => {
  const cid = freshCid()
  await cluster.pin(cid)
  const res = await cluster.unpin(cid)
  assert.equal(res.cid, cid)
  await assert.rejects(cluster.allocation(cid), /404/)
})

test('metricNames', async () => {
  const names = await cluster.metricNames()
  assert.ok(Array.isArray(names))
  for (const n of names) assert.equal(typeof n, 'string')
})

test('auth is required (static and method)', async () => {
  const anon = new Cluster(url)
  await assert.rejects(version(anon), /Unauthorized/)
  await assert.rejects(anon.version(), /Unauthorized/)
  const wrong = new Cluster(url, { headers: { Authorization: 'Basic ' + Buffer.from('x:y').toString('base64') } })
  await assert.rejects(wrong.info(), /Unauthorized/)
})

test('info and peerList', async () => {
  const info = await cluster.info()
  assert.equal(typeof info.id, 'string')
  assert.ok(Array.isArray(info.addresses))
  assert.equal(typeof info.version, 'string')
  assert.equal(typeof info.peerName, 'string')
  assert.equal(typeof info.rpcProtocolVersion, 'string')
  assert.ok(Array.isArray(info.clusterPeers))
  assert.equal(typeof info.ipfs.id, 'string')
  assert.ok(info.ipfs.id.length > 0)
  const peers = await cluster.peerList()
  assert.ok(peers.length >= 1)
  assert.ok(peers.some(p => p.id === info.id))
  for (const p of peers) assert.equal(typeof p.peerName, 'string')
})

test('statusAll contains a fresh pin', async () => {
  const { cid } = await cluster.add(new File(['all ' + Date.now()], 'a.txt'))
  const all = await cluster.statusAll()
  const mine = all.find(s => s.cid === cid)
  assert.ok(mine, 'fresh cid listed')
  for (const e of Object.values(mine.peerMap)) {
    assert.equal(typeof e.status, 'string')
    assert.equal(typeof e.peerName, 'string')
  }
})

test('statusAll filtered finds an unfetchable cid', async () => {
  const cid = freshCid() // exists nowhere: can never be fetched
  await cluster.pin(cid)
  const res = await cluster.statusAll({ filter: ['pin_queued', 'pinning', 'pin_error'] })
  assert.ok(res.some(s => s.cid === cid))
  for (const s of res) {
    assert.ok(Object.values(s.peerMap).some(e => ['pin_queued', 'pinning', 'pin_error'].includes(e.status)))
  }
  await cluster.unpin(cid)
})

test('statusAll by cids', async () => {
  const a = await cluster.add(new File(['one ' + Date.now()], '1.txt'))
  const b = await cluster.add(new File(['two ' + Date.now()], '2.txt'))
  const res = await cluster.statusAll({ cids: [a.cid, b.cid] })
  assert.equal(res.length, 2)
  assert.deepEqual(res.map(s => s.cid).sort(), [a.cid, b.cid].sort())
})
