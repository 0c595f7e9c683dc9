using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using PbsMarket.Core;
using PbsMarket.Testing;

namespace PbsMarket.L1.Tests;

/// <summary>The C# protocol core computes exactly what the deployed contracts compute.</summary>
public sealed class ParityTests(TestServers servers)
{
    static readonly BigInteger MaxU256 = (BigInteger.One << 256) - 1;

    static BigInteger RandomU256(Random rng) => rng.Next(8) switch
    {
        0 => BigInteger.Zero,
        1 => MaxU256,
        2 => rng.Next(),
        _ => new BigInteger(RandomBytes(rng, 32), isUnsigned: true, isBigEndian: true),
    };

    static ulong RandomU64(Random rng) => rng.Next(6) switch { 0 => 0, 1 => ulong.MaxValue, 2 => (ulong)rng.Next(1000), _ => (ulong)rng.NextInt64() * 2 + (ulong)rng.Next(2) };

    static byte[] RandomBytes(Random rng, int n) { var b = new byte[n]; rng.NextBytes(b); return b; }

    static string Call<T>(T fn) where T : FunctionMessage, new() => fn.GetCallData().ToHex(true);

    static Hash32 AsHash(string result) => Hash32.Parse(result);
    static Address AsAddress(string result) => Address.FromBytes(Hex.Decode(result).AsSpan(12, 20));

    [Fact]
    public async Task Header_hash_digests_domain_recovery_and_schedule_match_the_contracts_for_random_inputs()
    {
        var anvil = await servers.AnvilAsync();
        var proposers = Enumerable.Range(0, 6).Select(_ => ProtocolKey.Generate()).ToList();
        var market = await Market.DeployAsync(anvil, AnvilNode.DevKeys[8], proposers);
        var inbox = market.Deployed.Inbox;
        var registry = market.Deployed.Registry;

        var separator = await market.Client.DomainSeparatorAsync();
        Assert.Equal(market.Domain.Separator, separator);
        var set = await market.Client.ProposerSetAtAsync(0);
        Assert.Equal(proposers.Select(p => p.Address), set);

        var rng = new Random(20240611);
        const int cases = 50;
        var headers = new List<Header>();
        var keys = new List<ProtocolKey>();
        var calls = new List<(string, string)>();
        for (var i = 0; i < cases; i++)
        {
            var h = new Header(RandomU256(rng), RandomU64(rng), RandomU64(rng), Hash32.FromBytes(RandomBytes(rng, 32)), RandomU64(rng), RandomU64(rng),
                RandomU64(rng), Hash32.FromBytes(RandomBytes(rng, 32)), Address.FromBytes(RandomBytes(rng, 20)), Address.FromBytes(RandomBytes(rng, 20)),
                RandomU256(rng));
            var key = ProtocolKey.Generate();
            headers.Add(h);
            keys.Add(key);
            var hash = Eip712.HashStruct(h);
            calls.Add((inbox, Call(new HashHeaderFunction { H = HeaderDto.From(h) })));
            calls.Add((inbox, Call(new HeaderDigestFunction { H = HeaderDto.From(h) })));
            calls.Add((inbox, Call(new ProposalDigestFunction { Slot = h.Slot, HeaderHash = hash.ToArray() })));
            calls.Add((inbox, Call(new RecoverSignerFunction { Digest = Eip712.Digest(market.Domain, h).ToArray(), Signature = key.Sign(Eip712.Digest(market.Domain, h)).ToArray() })));
            var proposal = Eip712.Digest(market.Domain, new Proposal(h.Slot, hash));
            calls.Add((inbox, Call(new RecoverSignerFunction { Digest = proposal.ToArray(), Signature = key.Sign(proposal).ToArray() })));
            calls.Add((registry, Call(new ProposerForSlotFunction { Slot = h.Slot })));
        }
        var results = await Rpc.BatchCallAsync(anvil.RpcUrl, calls);

        for (var i = 0; i < cases; i++)
        {
            var h = headers[i];
            var r = results.AsSpan(i * 6, 6);
            var hash = Eip712.HashStruct(h);
            Assert.Equal(hash, AsHash(r[0]));
            Assert.Equal(Eip712.Digest(market.Domain, h), AsHash(r[1]));
            Assert.Equal(Eip712.Digest(market.Domain, new Proposal(h.Slot, hash)), AsHash(r[2]));
            Assert.True(SignatureRecovery.TryRecover(Eip712.Digest(market.Domain, h), keys[i].Sign(Eip712.Digest(market.Domain, h)), out var signer));
            Assert.Equal(keys[i].Address, signer);
            Assert.Equal(signer, AsAddress(r[3]));
            Assert.Equal(keys[i].Address, AsAddress(r[4]));
            Assert.Equal(ProposerSchedule.ProposerFor(h.Slot, set), AsAddress(r[5]));
        }

        // The typed client agrees with the raw batch on a sample, and the set is the same in far epochs.
        Assert.Equal(Eip712.HashStruct(headers[0]), await market.Client.HashHeaderAsync(headers[0]));
        Assert.Equal(Eip712.Digest(market.Domain, headers[1]), await market.Client.HeaderDigestAsync(headers[1]));
        Assert.Equal(ProposerSchedule.ProposerFor(headers[2].Slot, set), await market.Client.ProposerForSlotAsync(headers[2].Slot));
        Assert.Equal(set, await market.Client.ProposerSetAtAsync(ulong.MaxValue / 32));
        // The docs' vector header hashes the same on both sides.
        var vector = new Header(424242, 7, 3, Hash32.FromBytes(new byte[30].Concat(new byte[] { 0x12, 0x34 }).ToArray()), 1700000014000, 30000000, 21000,
            Keccak.Hash([0xc0]), Address.Parse("0x1111111111111111111111111111111111111111"), Address.Parse("0x2222222222222222222222222222222222222222"),
            BigInteger.Pow(10, 18));
        Assert.Equal(Hash32.Parse("0xafe67737fe8ebe34ade1f6f3c6dd78eb532939fbab17b2055085ba2146d4f509"), await market.Client.HashHeaderAsync(vector));
    }
}
