// Interop vectors from an independent implementation (ethers 6 + @openzeppelin/merkle-tree).
// Run from the repo root:  node tests/vectors/generate.mjs
// Writes tests/vectors/vectors.json; the C# tests (PbsMarket.Core.Tests/VectorTests.cs) check it byte for byte.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../tools/package.json'));
const { Wallet, TypedDataEncoder, recoverAddress, keccak256, toUtf8Bytes, AbiCoder, encodeRlp, decodeRlp, Transaction, getBytes, Signature } = require('ethers');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const abi = AbiCoder.defaultAbiCoder();
const id = (s) => keccak256(toUtf8Bytes(s));

const types = {
  Header: [
    { name: 'l2ChainId', type: 'uint256' }, { name: 'slot', type: 'uint64' }, { name: 'number', type: 'uint64' },
    { name: 'parentHash', type: 'bytes32' }, { name: 'timestampMs', type: 'uint64' }, { name: 'gasLimit', type: 'uint64' },
    { name: 'gasUsed', type: 'uint64' }, { name: 'payloadHash', type: 'bytes32' }, { name: 'builder', type: 'address' },
    { name: 'proposer', type: 'address' }, { name: 'value', type: 'uint256' },
  ],
  // Protocol version 2: the proposer also signs the settlement it accepted (docs/settlement.md).
  Proposal: [
    { name: 'slot', type: 'uint64' }, { name: 'headerHash', type: 'bytes32' }, { name: 'price', type: 'uint256' },
    { name: 'bidsRoot', type: 'bytes32' }, { name: 'relay', type: 'address' },
  ],
  HeaderRequest: [{ name: 'slot', type: 'uint64' }, { name: 'proposer', type: 'address' }],
  BidReceipt: [{ name: 'headerHash', type: 'bytes32' }, { name: 'receivedAtMs', type: 'uint64' }],
  AuctionResult: [
    { name: 'slot', type: 'uint64' }, { name: 'headerHash', type: 'bytes32' }, { name: 'price', type: 'uint256' },
    { name: 'bidsRoot', type: 'bytes32' }, { name: 'bidCount', type: 'uint32' },
  ],
};

// Fixed keys (well-known anvil dev keys): builder, proposer, relay.
const keys = {
  builder: '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  proposer: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  relay: '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
};
const wallets = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, new Wallet(v)]));

const domains = [
  { name: 'PbsMarket', version: '1', chainId: 31337n, verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' },
  { name: 'PbsMarket', version: '1', chainId: 1n, verifyingContract: '0x000000000000000000000000000000000000dEaD' },
];

const U64MAX = (1n << 64n) - 1n;
const U256MAX = (1n << 256n) - 1n;
const headers = [
  { l2ChainId: 42069n, slot: 1n, number: 1n, parentHash: '0x' + '00'.repeat(32), timestampMs: 1700000002000n, gasLimit: 30000000n,
    gasUsed: 21000n, payloadHash: id('payload-1'), builder: wallets.builder.address, proposer: wallets.proposer.address, value: 10n ** 18n },
  { l2ChainId: 0n, slot: 0n, number: 0n, parentHash: '0x' + '00'.repeat(32), timestampMs: 0n, gasLimit: 0n,
    gasUsed: 0n, payloadHash: keccak256('0xc0'), builder: '0x' + '00'.repeat(20), proposer: '0x' + '00'.repeat(20), value: 0n },
  { l2ChainId: U256MAX, slot: U64MAX, number: U64MAX, parentHash: '0x' + 'ff'.repeat(32), timestampMs: U64MAX, gasLimit: U64MAX,
    gasUsed: U64MAX, payloadHash: '0x' + 'ee'.repeat(32), builder: '0x' + 'ff'.repeat(20), proposer: '0x' + 'ab'.repeat(20), value: U256MAX },
  { l2ChainId: 901n, slot: 123456789n, number: 98765n, parentHash: id('parent'), timestampMs: 1712345678000n, gasLimit: 60000000n,
    gasUsed: 12345678n, payloadHash: id('payload-x'), builder: wallets.relay.address, proposer: wallets.builder.address, value: 123456789012345678901234567890n },
];

const str = (v) => (typeof v === 'bigint' ? v.toString() : v.toLowerCase());
const plain = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, str(v)]));

async function typed(domain, typeName, value, signer) {
  const t = { [typeName]: types[typeName] };
  const structHash = TypedDataEncoder.hashStruct(typeName, t, value);
  const digest = TypedDataEncoder.hash(domain, t, value);
  const signature = await signer.signTypedData(domain, t, value);
  const recovered = recoverAddress(digest, signature);
  return { value: plain(value), struct_hash: structHash, digest, signer: signer.address.toLowerCase(), signature, recovered: recovered.toLowerCase() };
}

const out = {
  generator: 'tests/vectors/generate.mjs (ethers 6.17.0, @openzeppelin/merkle-tree 1.0.8)',
  keys: Object.fromEntries(Object.entries(wallets).map(([k, w]) => [k, { private_key: keys[k], address: w.address.toLowerCase() }])),
  type_hashes: Object.fromEntries(Object.keys(types).map((n) => [n, TypedDataEncoder.from({ [n]: types[n] }).encodeType(n)]).map(([n, s]) => [n, { type: s, hash: id(s) }])),
  domains: [],
};

for (const d of domains) {
  const entry = { name: d.name, version: d.version, chain_id: d.chainId.toString(), verifying_contract: d.verifyingContract.toLowerCase(),
    separator: TypedDataEncoder.hashDomain(d), headers: [], proposals: [], header_requests: [], bid_receipts: [], auction_results: [] };
  for (const h of headers) entry.headers.push(await typed(d, 'Header', h, wallets.builder));
  const hh = TypedDataEncoder.hashStruct('Header', { Header: types.Header }, headers[0]);
  const zero32 = '0x' + '00'.repeat(32), zero20 = '0x' + '00'.repeat(20);
  for (const p of [{ slot: 1n, headerHash: hh, price: 5n * 10n ** 17n, bidsRoot: id('root'), relay: wallets.relay.address },
                   { slot: 0n, headerHash: zero32, price: 0n, bidsRoot: zero32, relay: zero20 },
                   { slot: 9n, headerHash: hh, price: 0n, bidsRoot: zero32, relay: zero20 },
                   { slot: U64MAX, headerHash: '0x' + 'ff'.repeat(32), price: U256MAX, bidsRoot: '0x' + 'ff'.repeat(32), relay: '0x' + 'ff'.repeat(20) }])
    entry.proposals.push(await typed(d, 'Proposal', p, wallets.proposer));
  for (const r of [{ slot: 7n, proposer: wallets.proposer.address }, { slot: U64MAX, proposer: '0x' + '00'.repeat(20) }])
    entry.header_requests.push(await typed(d, 'HeaderRequest', r, wallets.proposer));
  for (const r of [{ headerHash: hh, receivedAtMs: 1700000001234n }, { headerHash: '0x' + 'ff'.repeat(32), receivedAtMs: U64MAX }])
    entry.bid_receipts.push(await typed(d, 'BidReceipt', r, wallets.relay));
  for (const r of [{ slot: 1n, headerHash: hh, price: 5n * 10n ** 17n, bidsRoot: id('root'), bidCount: 3n },
                   { slot: 2n, headerHash: '0x' + '00'.repeat(32), price: 0n, bidsRoot: '0x' + '00'.repeat(32), bidCount: 0n },
                   { slot: U64MAX, headerHash: '0x' + 'ff'.repeat(32), price: U256MAX, bidsRoot: '0x' + 'ff'.repeat(32), bidCount: 4294967295n }])
    entry.auction_results.push(await typed(d, 'AuctionResult', r, wallets.relay));
  out.domains.push(entry);
}

// Bids Merkle trees.
out.merkle = [];
for (const size of [0, 1, 2, 3, 4, 5, 7, 8, 33]) {
  const leaves = [];
  for (let i = 0; i < size; i++) leaves.push([id(`bid-${size}-${i}`), (1700000000000n + BigInteger(i, size)).toString()]);
  if (size === 0) { out.merkle.push({ leaves: [], root: '0x' + '00'.repeat(32), proofs: [] }); continue; }
  const tree = StandardMerkleTree.of(leaves, ['bytes32', 'uint64']);
  out.merkle.push({
    leaves: leaves.map(([h, t]) => ({ header_hash: h, received_at_ms: t, leaf_hash: tree.leafHash([h, t]) })),
    root: tree.root,
    proofs: leaves.map((l) => tree.getProof(l)),
  });
}
function BigInteger(i, size) { return BigInt((i * 7919 + size * 13) % 5000); }

// Proposer schedule (version 2): seed_e = keccak256(abi.encode(R, uint256(e))), e = slot / 32,
// proposer = set[uint256(keccak256(abi.encode(seed_e, uint256(slot)))) % n].
const set = [1, 2, 3, 4, 5].map((i) => '0x' + i.toString(16).padStart(2, '0').repeat(20));
out.schedule = { active_set: set, slots_per_epoch: 32, cases: [] };
for (const randomness of ['0x' + '00'.repeat(32), id('prevrandao-1'), '0x' + 'ff'.repeat(32)]) {
  for (const slot of [0n, 1n, 2n, 31n, 32n, 1000n, 123456789n, U64MAX]) {
    const epoch = slot / 32n;
    const seed = keccak256(abi.encode(['bytes32', 'uint256'], [randomness, epoch]));
    const h = BigInt(keccak256(abi.encode(['bytes32', 'uint256'], [seed, slot])));
    for (const n of [1, 2, 3, 5]) {
      out.schedule.cases.push({ randomness, slot: slot.toString(), epoch: epoch.toString(), seed, set_size: n, index: Number(h % BigInt(n)),
        proposer: set[Number(h % BigInt(n))] });
    }
  }
}

// Payloads of real signed transactions.
const l2ChainId = 42069n;
const sender = new Wallet('0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6');
const txReqs = [
  { type: 0, chainId: l2ChainId, nonce: 0, gasPrice: 1000000000n, gasLimit: 21000n, to: wallets.builder.address, value: 10n ** 15n, data: '0x' },
  { type: 1, chainId: l2ChainId, nonce: 1, gasPrice: 2000000000n, gasLimit: 50000n, to: wallets.proposer.address, value: 0n, data: '0xdeadbeef',
    accessList: [{ address: wallets.relay.address, storageKeys: ['0x' + '00'.repeat(31) + '01'] }] },
  { type: 2, chainId: l2ChainId, nonce: 2, maxPriorityFeePerGas: 1000000000n, maxFeePerGas: 3000000000n, gasLimit: 100000n, to: null,
    value: 0n, data: '0x6080604052' },
  { type: 2, chainId: l2ChainId, nonce: 3, maxPriorityFeePerGas: 0n, maxFeePerGas: 1n, gasLimit: 21000n, to: wallets.relay.address,
    value: 1n, data: '0x' + 'ab'.repeat(100) },
];
const raws = [];
const txs = [];
for (const req of txReqs) {
  const raw = await sender.signTransaction(req);
  const tx = Transaction.from(raw);
  raws.push(raw);
  txs.push({ raw, type: tx.type, chain_id: tx.chainId.toString(), nonce: tx.nonce.toString(), gas_limit: tx.gasLimit.toString(),
    to: tx.to ? tx.to.toLowerCase() : null, value: tx.value.toString(), hash: tx.hash, from: tx.from.toLowerCase() });
}
// Block-body form: a legacy tx is embedded as its RLP list, a typed tx as a byte string.
const item = (raw) => (getBytes(raw)[0] >= 0xc0 ? decodeRlp(raw) : raw);
const wrongChain = await sender.signTransaction({ ...txReqs[2], chainId: 1n });
const preEip155 = Transaction.from({ ...txReqs[0], chainId: 0n, signature: Signature.from({ r: id('r'), s: '0x' + '11'.repeat(32), v: 27 }) }).serialized;
out.payloads = {
  l2_chain_id: l2ChainId.toString(),
  sender: sender.address.toLowerCase(),
  transactions: txs,
  cases: [
    { name: 'empty', payload: encodeRlp([]), tx_count: 0 },
    { name: 'legacy', payload: encodeRlp([item(raws[0])]), tx_count: 1 },
    { name: 'eip2930', payload: encodeRlp([item(raws[1])]), tx_count: 1 },
    { name: 'eip1559', payload: encodeRlp([item(raws[2])]), tx_count: 1 },
    { name: 'all', payload: encodeRlp(raws.map(item)), tx_count: raws.length },
  ],
  wrong_chain_id: encodeRlp([item(wrongChain)]),
  pre_eip155_legacy: encodeRlp([item(preEip155)]),
};
for (const c of out.payloads.cases) c.payload_hash = keccak256(c.payload);

writeFileSync(join(here, 'vectors.json'), JSON.stringify(out, null, 2) + '\n');
console.log('wrote', join(here, 'vectors.json'));
