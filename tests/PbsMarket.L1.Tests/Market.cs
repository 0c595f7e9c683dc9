using System.Net.Http.Json;
using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Testing;

namespace PbsMarket.L1.Tests;

/// <summary>A deployed market on an anvil node plus the keys around it, and helpers to make signed headers.</summary>
public sealed class Market
{
    public const long L2ChainId = 424242;
    public const long SlotMs = 2000;
    public static readonly byte[] EmptyPayload = [0xc0];

    public required AnvilNode Anvil { get; init; }
    public required DeployedMarket Deployed { get; init; }
    public required IReadOnlyList<ProtocolKey> Proposers { get; init; }
    public required InboxClient Client { get; init; }
    public Eip712Domain Domain => Eip712Domain.PbsMarket(Deployed.L1ChainId, Address.Parse(Deployed.Inbox));
    /// <summary>The relay registered on the inbox whose AuctionResult signatures these items carry (anvil dev key 9).</summary>
    public static readonly ProtocolKey Relay = ProtocolKey.FromHex(AnvilNode.DevKeys[9]);
    readonly Dictionary<ulong, Hash32> _seeds = [];

    /// <summary>
    /// Deploys (first price by default, so that an item's price is simply its value) with the given genesis proposers and
    /// registers <see cref="Relay"/>; genesis 10 minutes ago so slots up to ~300 have started.
    /// </summary>
    public static async Task<Market> DeployAsync(AnvilNode anvil, string deployerKey, IReadOnlyList<ProtocolKey> proposers, PriceRule rule = PriceRule.FirstPrice)
    {
        var genesisMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 600_000;
        var deployed = await Deployer.DeployAsync(anvil.RpcUrl, deployerKey,
            new DeployParameters(L2ChainId, genesisMs, SlotMs, 32, GenesisProposers: [.. proposers.Select(p => p.Address)], WithdrawalDelaySeconds: 600, PriceRule: rule));
        await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployed, AnvilNode.DevKeys[9]);
        var market = new Market { Anvil = anvil, Deployed = deployed, Proposers = proposers, Client = new InboxClient(L1Rpc.Connect(anvil.RpcUrl), deployed) };
        return market;
    }

    public static IReadOnlyList<ProtocolKey> DevProposers(params int[] devKeyIndexes) => [.. devKeyIndexes.Select(i => ProtocolKey.FromHex(AnvilNode.DevKeys[i]))];

    /// <summary>The slot's proposer by the C# schedule, with L1's seed of the slot's epoch.</summary>
    public ProtocolKey ProposerOf(ulong slot)
    {
        var epoch = slot / 32;
        if (!_seeds.TryGetValue(epoch, out var seed)) _seeds[epoch] = seed = Client.SeedOfAsync(epoch).GetAwaiter().GetResult();
        var who = ProposerSchedule.ProposerFor(slot, seed, [.. Proposers.Select(p => p.Address)]);
        return Proposers.Single(p => p.Address == who);
    }

    public Header MakeHeader(ulong slot, ulong number, Hash32 parent, Address builder, BigInteger value, byte[]? payload = null) =>
        new(L2ChainId, slot, number, parent, (ulong)(Deployed.GenesisMs + (long)slot * SlotMs), 30_000_000, 21_000,
            Keccak.Hash(payload ?? EmptyPayload), builder, ProposerOf(slot).Address, value);

    /// <summary>
    /// A first-price header of value <paramref name="price"/> signed by the builder, its AuctionResult signed by <see cref="Relay"/>,
    /// and its Proposal v2 (with that settlement) signed by the slot's scheduled proposer.
    /// </summary>
    public PostItem Item(ulong slot, ulong number, Hash32 parent, ProtocolKey builder, BigInteger price, ProtocolKey? signAs = null)
    {
        var h = MakeHeader(slot, number, parent, builder.Address, price);
        var root = Keccak.Hash([(byte)slot]);
        var relaySig = Relay.Sign(Eip712.Digest(Domain, new AuctionResult(slot, h.Hash(), price, root, 1)));
        var settlement = new Settlement(price, root, 1, relaySig, null);
        return new PostItem(h, (signAs ?? builder).Sign(Eip712.Digest(Domain, h)),
            ProposerOf(slot).Sign(Eip712.Digest(Domain, SettlementRules.ProposalFor(slot, h.Hash(), settlement, Relay.Address))), EmptyPayload, settlement);
    }

    public async Task<ulong> NonceAsync(string address, string block = "latest") =>
        Convert.ToUInt64((await Anvil.RpcAsync("eth_getTransactionCount", [address, block])).GetString(), 16);
}

public static class Rpc
{
    static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>Many eth_calls in one JSON-RPC batch request; results in call order.</summary>
    public static async Task<string[]> BatchCallAsync(string url, IReadOnlyList<(string To, string Data)> calls)
    {
        var body = calls.Select((c, i) => new { jsonrpc = "2.0", id = i, method = "eth_call", @params = new object[] { new { to = c.To, data = c.Data }, "latest" } });
        using var response = await Http.PostAsJsonAsync(url, body);
        response.EnsureSuccessStatusCode();
        var doc = await response.Content.ReadFromJsonAsync<JsonElement>();
        var results = new string[calls.Count];
        foreach (var r in doc.EnumerateArray())
        {
            var id = r.GetProperty("id").GetInt32();
            results[id] = r.TryGetProperty("result", out var res) ? res.GetString()! : throw new InvalidOperationException($"call {id}: {r}");
        }
        return results;
    }
}
