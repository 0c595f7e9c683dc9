using System.Numerics;
using System.Text.Json;

namespace PbsMarket.Core.Tests;

public class VectorTests
{
    private static Eip712Domain Domain(JsonElement d) =>
        Eip712Domain.PbsMarket(BigInteger.Parse(d.Str("chain_id")), Address.Parse(d.Str("verifying_contract")));

    private static ProtocolKey Key(string role) => ProtocolKey.FromHex(Vectors.Root.GetProperty("keys").GetProperty(role).Str("private_key"));

    [Fact]
    public void Keys_derive_the_same_addresses()
    {
        foreach (var k in Vectors.Root.GetProperty("keys").EnumerateObject())
            Assert.Equal(k.Value.Str("address"), ProtocolKey.FromHex(k.Value.Str("private_key")).Address.ToString());
    }

    [Fact]
    public void Type_hashes_match()
    {
        var th = Vectors.Root.GetProperty("type_hashes");
        Assert.Equal(Eip712.HeaderType, th.GetProperty("Header").Str("type"));
        Assert.Equal(th.GetProperty("Header").Str("hash"), Eip712.HeaderTypeHash.ToString());
        Assert.Equal(Eip712.ProposalType, th.GetProperty("Proposal").Str("type"));
        Assert.Equal(th.GetProperty("Proposal").Str("hash"), Eip712.ProposalTypeHash.ToString());
        Assert.Equal(Eip712.HeaderRequestType, th.GetProperty("HeaderRequest").Str("type"));
        Assert.Equal(th.GetProperty("HeaderRequest").Str("hash"), Eip712.HeaderRequestTypeHash.ToString());
        Assert.Equal(Eip712.BidReceiptType, th.GetProperty("BidReceipt").Str("type"));
        Assert.Equal(th.GetProperty("BidReceipt").Str("hash"), Eip712.BidReceiptTypeHash.ToString());
        Assert.Equal(Eip712.AuctionResultType, th.GetProperty("AuctionResult").Str("type"));
        Assert.Equal(th.GetProperty("AuctionResult").Str("hash"), Eip712.AuctionResultTypeHash.ToString());
    }

    [Fact]
    public void Domain_separators_match()
    {
        foreach (var d in Vectors.Root.GetProperty("domains").EnumerateArray())
            Assert.Equal(d.Str("separator"), Domain(d).Separator.ToString());
    }

    private static void CheckTyped(Eip712Domain domain, JsonElement v, Hash32 structHash, string role)
    {
        Assert.Equal(v.Str("struct_hash"), structHash.ToString());
        var digest = Eip712.Digest(domain, structHash);
        Assert.Equal(v.Str("digest"), digest.ToString());
        // RFC 6979 signing is deterministic: our signature must equal ethers' byte for byte.
        var sig = Key(role).Sign(digest);
        Assert.Equal(v.Str("signature"), sig.ToString());
        Assert.True(Signature.TryParse(v.Str("signature"), out var theirs, out var err), err);
        Assert.True(SignatureRecovery.TryRecoverNative(digest, theirs, out var nativeSigner));
        Assert.Equal(v.Str("recovered"), nativeSigner.ToString());
        Assert.True(SignatureRecovery.TryRecoverManaged(digest, theirs, out var managedSigner));
        Assert.Equal(v.Str("recovered"), managedSigner.ToString());
        Assert.Equal(v.Str("signer"), nativeSigner.ToString());
    }

    [Fact]
    public void Headers_hash_digest_sign_and_recover_like_ethers()
    {
        var count = 0;
        foreach (var d in Vectors.Root.GetProperty("domains").EnumerateArray())
        {
            var domain = Domain(d);
            foreach (var v in d.GetProperty("headers").EnumerateArray())
            {
                var h = v.GetProperty("value");
                var header = new Header(
                    BigInteger.Parse(h.Str("l2ChainId")), ulong.Parse(h.Str("slot")), ulong.Parse(h.Str("number")),
                    Hash32.Parse(h.Str("parentHash")), ulong.Parse(h.Str("timestampMs")), ulong.Parse(h.Str("gasLimit")),
                    ulong.Parse(h.Str("gasUsed")), Hash32.Parse(h.Str("payloadHash")), Address.Parse(h.Str("builder")),
                    Address.Parse(h.Str("proposer")), BigInteger.Parse(h.Str("value")));
                Assert.Equal(v.Str("struct_hash"), header.Hash().ToString());
                CheckTyped(domain, v, Eip712.HashStruct(header), "builder");
                count++;
            }
        }
        Assert.Equal(8, count);
    }

    [Fact]
    public void Other_types_match_ethers()
    {
        foreach (var d in Vectors.Root.GetProperty("domains").EnumerateArray())
        {
            var domain = Domain(d);
            foreach (var v in d.GetProperty("proposals").EnumerateArray())
            {
                var x = v.GetProperty("value");
                var p = new Proposal(ulong.Parse(x.Str("slot")), Hash32.Parse(x.Str("headerHash")), BigInteger.Parse(x.Str("price")),
                    Hash32.Parse(x.Str("bidsRoot")), Address.Parse(x.Str("relay")));
                CheckTyped(domain, v, Eip712.HashStruct(p), "proposer");
                if (p.Relay.IsZero && p.Price.IsZero) Assert.Equal(Eip712.HashStruct(Proposal.Fallback(p.Slot, p.HeaderHash)), Eip712.HashStruct(p));
            }
            foreach (var v in d.GetProperty("header_requests").EnumerateArray())
            {
                var x = v.GetProperty("value");
                CheckTyped(domain, v, Eip712.HashStruct(new HeaderRequest(ulong.Parse(x.Str("slot")), Address.Parse(x.Str("proposer")))), "proposer");
            }
            foreach (var v in d.GetProperty("bid_receipts").EnumerateArray())
            {
                var x = v.GetProperty("value");
                CheckTyped(domain, v, Eip712.HashStruct(new BidReceipt(Hash32.Parse(x.Str("headerHash")), ulong.Parse(x.Str("receivedAtMs")))), "relay");
            }
            foreach (var v in d.GetProperty("auction_results").EnumerateArray())
            {
                var x = v.GetProperty("value");
                var r = new AuctionResult(ulong.Parse(x.Str("slot")), Hash32.Parse(x.Str("headerHash")), BigInteger.Parse(x.Str("price")),
                    Hash32.Parse(x.Str("bidsRoot")), uint.Parse(x.Str("bidCount")));
                CheckTyped(domain, v, Eip712.HashStruct(r), "relay");
            }
        }
    }

    [Fact]
    public void Bids_merkle_roots_and_proofs_match_openzeppelin()
    {
        var sizes = new List<int>();
        foreach (var m in Vectors.Root.GetProperty("merkle").EnumerateArray())
        {
            var leaves = m.GetProperty("leaves").EnumerateArray()
                .Select(l => (Hash32.Parse(l.Str("header_hash")), ulong.Parse(l.Str("received_at_ms")))).ToList();
            sizes.Add(leaves.Count);
            var root = BidsMerkle.Root(leaves);
            Assert.Equal(m.Str("root"), root.ToString());
            var proofs = m.GetProperty("proofs").EnumerateArray().ToList();
            var i = 0;
            foreach (var l in m.GetProperty("leaves").EnumerateArray())
            {
                var (hh, ms) = leaves[i];
                Assert.Equal(l.Str("leaf_hash"), BidsMerkle.LeafHash(hh, ms).ToString());
                var proof = BidsMerkle.Proof(leaves, hh, ms);
                Assert.NotNull(proof);
                Assert.Equal(proofs[i].EnumerateArray().Select(p => p.GetString()), proof.Select(p => p.ToString()));
                Assert.True(BidsMerkle.Verify(root, hh, ms, proof));
                i++;
            }
        }
        Assert.Equal([0, 1, 2, 3, 4, 5, 7, 8, 33], sizes);
    }

    [Fact]
    public void Proposer_schedule_matches_solidity_formula()
    {
        var s = Vectors.Root.GetProperty("schedule");
        var set = s.GetProperty("active_set").EnumerateArray().Select(a => Address.Parse(a.GetString()!)).ToList();
        var perEpoch = (ulong)s.GetProperty("slots_per_epoch").GetInt32();
        var count = 0;
        foreach (var c in s.GetProperty("cases").EnumerateArray())
        {
            var n = c.GetProperty("set_size").GetInt32();
            var slot = ulong.Parse(c.Str("slot"));
            var epoch = ProposerSchedule.EpochOf(slot, perEpoch);
            Assert.Equal(c.Str("epoch"), epoch.ToString());
            var seed = ProposerSchedule.Seed(Hash32.Parse(c.Str("randomness")), epoch);
            Assert.Equal(c.Str("seed"), seed.ToString());
            Assert.Equal(c.GetProperty("index").GetInt32(), ProposerSchedule.IndexFor(slot, seed, n));
            Assert.Equal(c.Str("proposer"), ProposerSchedule.ProposerFor(slot, seed, set.Take(n).ToList()).ToString());
            count++;
        }
        Assert.Equal(3 * 8 * 4, count);
    }

    [Fact]
    public void Payloads_of_ethers_transactions_decode()
    {
        var p = Vectors.Root.GetProperty("payloads");
        var chainId = BigInteger.Parse(p.Str("l2_chain_id"));
        var txs = p.GetProperty("transactions").EnumerateArray().ToList();
        foreach (var c in p.GetProperty("cases").EnumerateArray())
        {
            var payload = Hex.Decode(c.Str("payload"));
            Assert.Equal(c.Str("payload_hash"), Keccak.Hash(payload).ToString());
            var check = PayloadCodec.Decode(payload, chainId, PayloadLimits.Default);
            Assert.True(check.IsOk, check.ToString());
            Assert.Equal(c.GetProperty("tx_count").GetInt32(), check.Transactions.Count);
        }

        var all = Hex.Decode(p.GetProperty("cases").EnumerateArray().Single(c => c.Str("name") == "all").Str("payload"));
        var decoded = PayloadCodec.Decode(all, chainId).Transactions;
        for (var i = 0; i < txs.Count; i++)
        {
            var t = txs[i];
            var d = decoded[i];
            Assert.Equal(t.GetProperty("type").GetInt32(), d.Type);
            Assert.Equal(t.Str("chain_id"), d.ChainId.ToString());
            Assert.Equal(t.Str("nonce"), d.Nonce.ToString());
            Assert.Equal(t.Str("gas_limit"), d.GasLimit.ToString());
            Assert.Equal(t.GetProperty("to").ValueKind == JsonValueKind.Null ? null : t.Str("to"), d.To?.ToString());
            Assert.Equal(t.Str("value"), d.Value.ToString());
            Assert.Equal(t.Str("hash"), d.TxHash.ToString());
            Assert.Equal(t.Str("from"), PayloadCodec.RecoverSender(Hex.Decode(t.Str("raw"))).ToString());
        }

        // Re-encoding the raw transactions reproduces ethers' block-body encoding byte for byte.
        var raws = txs.Select(t => Hex.Decode(t.Str("raw"))).ToList();
        Assert.Equal(all, PayloadCodec.Encode(raws));
        Assert.Equal(raws.Select(r => Hex.Encode(r)), PayloadCodec.Split(all)!.Select(r => Hex.Encode(r)));
    }

    [Fact]
    public void Payload_with_other_chain_id_is_refused()
    {
        var p = Vectors.Root.GetProperty("payloads");
        var chainId = BigInteger.Parse(p.Str("l2_chain_id"));
        var wrong = PayloadCodec.Decode(Hex.Decode(p.Str("wrong_chain_id")), chainId);
        Assert.Equal(ErrorCodes.WrongChainId, wrong.Error?.Code);
        Assert.Contains("chain id 1, expected 42069", wrong.Error!.Message);
        var pre155 = PayloadCodec.Decode(Hex.Decode(p.Str("pre_eip155_legacy")), chainId);
        Assert.Equal(ErrorCodes.WrongChainId, pre155.Error?.Code);
    }
}
