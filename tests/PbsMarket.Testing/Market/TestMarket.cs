using PbsMarket.Relay.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Nethereum.Util;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Relay;


namespace PbsMarket.Testing.Market;

/// <summary>
/// A whole market for one test class: its own anvil with the contracts deployed (4 genesis proposers,
/// 3 builders with collateral), its own Redis key space and PostgreSQL database, and relay instances
/// started in-process on real loopback ports.
/// </summary>
public sealed class TestMarket : IAsyncDisposable
{
    /// <summary>Defaults; a market may run longer slots (<see cref="SlotLengthMs"/>) where a test needs time inside one auction.</summary>
    public const long SlotMs = 1000, CloseOffsetMs = 200;
    public long SlotLengthMs { get; init; } = SlotMs;
    public static readonly ProtocolKey[] Proposers = [.. AnvilNode.DevKeys[1..5].Select(ProtocolKey.FromHex)];
    public static readonly ProtocolKey[] Builders = [.. AnvilNode.DevKeys[5..8].Select(ProtocolKey.FromHex)];
    public static readonly ProtocolKey RelaySigner = ProtocolKey.FromHex(AnvilNode.DevKeys[9]);
    public static readonly BigInteger Collateral = UnitConversion.Convert.ToWei(10);
    /// <summary>The inbox's reserve price (an L1 market parameter), which the relays are configured with.</summary>
    public const long ReservePrice = 1000;
    public const long L2ChainId = 901;

    readonly List<RelayInstance> _relays = [];
    public required AnvilNode Anvil { get; init; }
    public required RedisServer Redis { get; init; }
    /// <summary>What the relays connect to: <see cref="Redis"/>, or a Redis Cluster's seed list.</summary>
    public string RedisConnection => _redisConnection ?? Redis.ConnectionString;
    string? _redisConnection;
    public required PostgresServer Postgres { get; init; }
    public required string PostgresConnection { get; init; }
    public required DeployedMarket Deployment { get; init; }
    public required string Network { get; init; }
    public Eip712Domain Domain => Eip712Domain.PbsMarket(Deployment.L1ChainId, Address.Parse(Deployment.Inbox));
    public SlotClock Clock => new(TimeProvider.System, (ulong)Deployment.GenesisMs, (ulong)SlotLengthMs, CloseOffsetMs);

    /// <param name="redisConnection">A Redis Cluster's connection string: the relays keep their state there instead of on
    /// <see cref="Redis"/> (which the market still holds, for tests that read the single server).</param>
    public static async Task<TestMarket> StartAsync(TestServers servers, RedisServer? ownRedis = null, PostgresServer? ownPostgres = null, long slotMs = SlotMs,
        string? redisConnection = null)
    {
        // Blocks every second, as an L1 would have them: the inbox checks slots against block time.
        var anvil = await servers.StartOwnAsync(new AnvilNode(blockTimeSeconds: 1));
        var redis = ownRedis ?? await servers.RedisAsync();
        var pg = ownPostgres ?? await servers.PostgresAsync();
        var pgConn = await pg.CreateDatabaseAsync("relay");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var genesis = now - now % slotMs - 20 * slotMs;
        var deployment = await Deployer.DeployAsync(anvil.RpcUrl, AnvilNode.DevKeys[0], new DeployParameters(
            L2ChainId, genesis, slotMs, 32, GenesisProposers: [.. Proposers.Select(p => p.Address)], PriceRule: PriceRule.SecondPrice, ReservePrice: ReservePrice));
        // Version 2: the relay is registered and bonded on L1; builders allocate their collateral to it.
        // (Dev key 8 is the second relay some tests run.)
        foreach (var relayKey in new[] { AnvilNode.DevKeys[9], AnvilNode.DevKeys[8] })
        {
            await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployment, relayKey);
            foreach (var b in Builders) await Deployer.DepositAsync(anvil.RpcUrl, deployment, ToHex(b), Collateral, ProtocolKey.FromHex(relayKey).Address);
        }
        return new TestMarket
        {
            Anvil = anvil, Redis = redis, Postgres = pg, PostgresConnection = pgConn, Deployment = deployment,
            Network = "t" + Guid.NewGuid().ToString("N")[..10],
            SlotLengthMs = slotMs,
            _redisConnection = redisConnection,
        };
    }

    static string ToHex(ProtocolKey key) => AnvilNode.DevKeys.First(k => ProtocolKey.FromHex(k).Address == key.Address);

    readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, Hash32> _seeds = new();

    /// <summary>The slot's proposer: the seeded schedule (ProposerSchedule) over the genesis set, with L1's seed of the slot's epoch.</summary>
    public ProtocolKey ProposerOf(ulong slot)
    {
        var epoch = slot / 32;
        var seed = _seeds.GetOrAdd(epoch, e => new InboxClient(L1Rpc.Connect(Anvil.RpcUrl), Deployment).SeedOfAsync(e).GetAwaiter().GetResult());
        return Proposers.First(p => p.Address == ProposerSchedule.ProposerFor(slot, seed, [.. Proposers.Select(x => x.Address)]));
    }

    /// <summary>
    /// What the slot's proposer signs for <paramref name="headerHash"/> in protocol version 2: the relay's settlement
    /// when it is the relay's winning header (read from GET /relay/v1/proposer/header/{slot}), else a fallback proposal.
    /// </summary>
    public async Task<Proposal> ProposalForAsync(string relayUrl, ulong slot, Hash32 headerHash) =>
        await SettlementForAsync(relayUrl, slot, headerHash) is { } s
            ? SettlementRules.ProposalFor(slot, headerHash, s.Settlement, s.Relay)
            : Proposal.Fallback(slot, headerHash);

    /// <summary>The relay's settlement for its winning header of the slot (GET /relay/v1/proposer/header/{slot}, waiting for the
    /// close), or null when <paramref name="headerHash"/> is not what the relay offers.</summary>
    public async Task<(Settlement Settlement, Address Relay)?> SettlementForAsync(string relayUrl, ulong slot, Hash32 headerHash)
    {
        var proposer = ProposerOf(slot);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{relayUrl}/relay/v1/proposer/header/{slot}");
        request.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(Domain, new HeaderRequest(slot, proposer.Address))).ToString());
        var response = await http.SendAsync(request);
        // The header is served once the auction is closed: wait for it (a proposer signs only what it was offered).
        for (var i = 0; i < 40 && (int)response.StatusCode is 425 or 503; i++)
        {
            response.Dispose();
            await Task.Delay(100);
            using var again = new HttpRequestMessage(HttpMethod.Get, $"{relayUrl}/relay/v1/proposer/header/{slot}");
            again.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(Domain, new HeaderRequest(slot, proposer.Address))).ToString());
            response = await http.SendAsync(again);
        }
        using var _ = response;
        if (response.StatusCode != System.Net.HttpStatusCode.OK) return null;
        using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        if (Hash32.Parse(doc.RootElement.GetProperty("header_hash").GetString()!) != headerHash) return null;
        return (Wire.ParseSettlementOf(doc.RootElement).Value!, Address.Parse(doc.RootElement.GetProperty("relay").GetString()!));
    }

    /// <summary>
    /// What the proposer client sends the other relays once it signed <paramref name="relayUrl"/>'s winning header for
    /// the slot: the header, its builder's signature, the proposer's Proposal v2 signature and that relay's settlement
    /// (body of POST /relay/v1/proposer/heads).
    /// </summary>
    public async Task<byte[]> AnnouncementAsync(string relayUrl, Header header, Signature builderSignature, byte[] payload)
    {
        var hash = Eip712.HashStruct(header);
        var s = await SettlementForAsync(relayUrl, header.Slot, hash) ?? throw new InvalidOperationException($"{relayUrl} does not offer {hash} for slot {header.Slot}");
        var proposal = SettlementRules.ProposalFor(header.Slot, hash, s.Settlement, s.Relay);
        var signature = ProposerOf(header.Slot).Sign(Eip712.Digest(Domain, proposal));
        return Wire.ToUtf8(new HeadAnnouncement(header, builderSignature, signature, payload, s.Settlement), Wire.WriteHeadAnnouncement);
    }

    /// <summary>The body of POST /relay/v1/proposer/proposals for <see cref="ProposalForAsync"/>, signed by <paramref name="proposer"/>.</summary>
    public async Task<byte[]> ProposalBodyAsync(string relayUrl, ulong slot, Hash32 headerHash, ProtocolKey proposer)
    {
        var p = await ProposalForAsync(relayUrl, slot, headerHash);
        return Wire.ToUtf8(ProposalSubmission.Of(p, proposer.Sign(Eip712.Digest(Domain, p))), Wire.WriteProposalSubmission);
    }

    /// <param name="port">A fixed loopback port (e.g. to restart a relay where its clients expect it); by default port 0,
    /// so that Kestrel binds a free one itself (no window for another process to take it) and reports it.</param>
    /// <param name="waitReady">Wait for /readyz to answer 200 (a test of readiness itself passes false).</param>
    public async Task<RelayInstance> StartRelayAsync(Action<Dictionary<string, string?>>? configure = null, int? port = null, bool waitReady = true)
    {
        var chosenPort = port ?? 0;
        var instance = port is { } p ? $"test-{p}" : $"test-{Guid.NewGuid().ToString("N")[..8]}";
        var settings = RelaySettings(instance);
        configure?.Invoke(settings);
        var recent = new RecentLog();
        var app = RelayHost.Build([], b =>
        {
            b.Configuration.AddInMemoryCollection(settings);
            b.WebHost.UseUrls($"http://127.0.0.1:{chosenPort}");
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            b.Logging.AddProvider(recent);
            if (Environment.GetEnvironmentVariable("PBS_TEST_LOG_DIR") is { Length: > 0 } logDir)
            {
                Directory.CreateDirectory(logDir);
                b.Logging.SetMinimumLevel(LogLevel.Information);
                b.Logging.AddProvider(new FileLoggerProvider(Path.Combine(logDir, $"relay-{Network}-{instance}.log")));
            }
        });
        await app.StartAsync();
        var relay = new RelayInstance(app, app.Urls.First().TrimEnd('/'), recent);
        lock (_relays) _relays.Add(relay);
        if (waitReady) await relay.WaitReadyAsync();
        return relay;
    }

    /// <summary>
    /// Relay settings for tests that race bids against the close, across instances or a failover, not against the rate
    /// limits (the attack suite tests those): a tight loop of bids may pass 200 a second per builder on a fast run.
    /// </summary>
    public static void Unlimited(Dictionary<string, string?> c)
    {
        c["Relay:MaxBidsPerBuilderPerSlot"] = "100000";
        c["Relay:BidsPerSecondPerBuilder"] = "1000000";
        c["Relay:BidRequestsPerSecondPerAddress"] = "1000000";
        c["Relay:RequestsPerSecondPerAddress"] = "1000000";
    }

    /// <summary>The settings of a relay instance of this market (section "Relay"), as StartRelayAsync and `pbs relay --config` take them.</summary>
    public Dictionary<string, string?> RelaySettings(string instance) => new()
    {
            ["Relay:Redis"] = RedisConnection,
            ["Relay:Postgres"] = PostgresConnection,
            ["Relay:L1Rpc"] = Anvil.RpcUrl,
            ["Relay:Network"] = Network,
            ["Relay:L1ChainId"] = Deployment.L1ChainId.ToString(),
            ["Relay:L2ChainId"] = L2ChainId.ToString(),
            ["Relay:Inbox"] = Deployment.Inbox,
            ["Relay:Registry"] = Deployment.Registry,
            ["Relay:Escrow"] = Deployment.Escrow,
            ["Relay:DeployedAtBlock"] = Deployment.DeployedAtBlock.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Relay:GenesisMs"] = Deployment.GenesisMs.ToString(),
            ["Relay:SlotMs"] = SlotLengthMs.ToString(),
            ["Relay:CloseOffsetMs"] = CloseOffsetMs.ToString(),
            ["Relay:SigningKey"] = AnvilNode.DevKeys[9],
            ["Relay:ReservePrice"] = ReservePrice.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Relay:MaxBidsPerBuilderPerSlot"] = "50",
            ["Relay:MaxPayloadBytes"] = "65536",
            ["Relay:InstanceId"] = instance,
    };

    /// <summary>Writes settings ("Section:Key" → value, null drops the key) as a JSON settings file for `pbs … --config`.</summary>
    public static string WriteSettingsFile(string path, IReadOnlyDictionary<string, string?> settings)
    {
        var root = new System.Text.Json.Nodes.JsonObject();
        foreach (var (key, value) in settings)
        {
            if (value is null) continue;
            var parts = key.Split(':');
            var node = root;
            foreach (var part in parts[..^1])
            {
                if (node[part] is not System.Text.Json.Nodes.JsonObject child) node[part] = child = [];
                node = child;
            }
            node[parts[^1]] = value;
        }
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    /// <summary>The slot's bids in the archive (PostgreSQL), once there are at least <paramref name="expected"/> (or after 60 s, whatever is there).</summary>
    public async Task<List<AcceptedBid>> WaitArchivedBidsAsync(ulong slot, int expected)
    {
        await using var conn = new Npgsql.NpgsqlConnection(PostgresConnection);
        await conn.OpenAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var bids = new List<AcceptedBid>();
            await using (var cmd = new Npgsql.NpgsqlCommand("SELECT header_hash, builder, value::text, received_at_ms, parent_hash, sequence, gas_used, tx_count FROM bids WHERE slot = $1", conn)
                         { Parameters = { new() { Value = (long)slot } } })
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync())
                    bids.Add(new AcceptedBid(Hash32.Parse(r.GetString(0)), Address.Parse(r.GetString(1)), BigInteger.Parse(r.GetString(2), System.Globalization.CultureInfo.InvariantCulture),
                        (ulong)r.GetInt64(3), Hash32.Parse(r.GetString(4)), r.GetInt64(5), (ulong)r.GetInt64(6), r.GetInt32(7)));
            if (bids.Count >= expected || DateTime.UtcNow > deadline) return bids;
            await Task.Delay(100);
        }
    }

    /// <summary>Waits for an open auction with at least <paramref name="minLeftMs"/> before its close.</summary>
    public async Task<OpenAuction> NextAuctionAsync(BuilderClient client, long minLeftMs = 500)
    {
        // Long enough to sit out the rest of the open auction and then the next one opening, on a loaded machine.
        var patience = TimeSpan.FromMilliseconds(Math.Max(15_000, 2 * SlotLengthMs + 5_000));
        var deadline = DateTime.UtcNow + patience;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var a = await client.GetAuctionAsync();
                var left = (long)a.ClosesAtMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                if (left >= minLeftMs) return a;
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(left, 0) + 30));
            }
            catch (RelayRefusedException e) when (e.Code == "unavailable")
            {
                await Task.Delay(100);
            }
        }
        throw new TimeoutException($"no open auction with {minLeftMs} ms left within {patience.TotalSeconds:0} s");
    }

    /// <summary>
    /// Waits until the slot's auction has closed: by the wall clock, then until a running relay of this market
    /// reports it closed (on a loaded machine the relay's close can trail the clock). A relay that does not answer
    /// (a test that stopped it) ends the wait at the clock's close.
    /// </summary>
    public async Task WaitClosedAsync(ulong slot, RelayInstance? relay = null)
    {
        var closes = (long)Clock.AuctionClosesMs(slot);
        var wait = closes - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 60;
        if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait));
        RelayInstance[] relays;
        lock (_relays) relays = [.. _relays];
        relay ??= relays.FirstOrDefault(r => !r.IsStopped);
        if (relay is null) return;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && !relay.IsStopped)
        {
            try
            {
                using var r = await http.GetAsync($"{relay.Url}/relay/v1/data/slots/{slot}");
                if (!r.IsSuccessStatusCode) return;
                using var doc = System.Text.Json.JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                if (doc.RootElement.GetProperty("status").GetString() != "open") return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException or KeyNotFoundException)
            {
                return;
            }
            await Task.Delay(50);
        }
    }

    public static (Header Header, Signature Signature, byte[] Payload) Bid(OpenAuction a, ProtocolKey builder, BigInteger value, byte[]? payload = null, ulong gasUsed = 0,
        Func<Header, Header>? tweak = null)
    {
        payload ??= PayloadCodec.Empty;
        var header = a.HeaderFor(builder.Address, payload, gasUsed, value);
        if (tweak is not null) header = tweak(header);
        return (header, builder.Sign(Eip712.Digest(a.Domain, header)), payload);
    }

    public async ValueTask DisposeAsync()
    {
        RelayInstance[] relays;
        lock (_relays) relays = [.. _relays];
        foreach (var r in relays) await r.DisposeAsync();
        await Anvil.DisposeAsync();
    }
}

public sealed class RelayInstance(WebApplication app, string url, RecentLog? log = null) : IAsyncDisposable
{
    public string Url { get; } = url;
    public WebApplication App { get; } = app;
    /// <summary>The relay's newest warnings and errors (for a failing test's message).</summary>
    public RecentLog Log { get; } = log ?? new RecentLog();
    public BuilderClient Client { get; } = new(url);
    volatile bool _stopped;
    public bool IsStopped => _stopped;

    public Task WaitReadyAsync() => WaitReadyAsync(Url);

    /// <summary>Waits until the relay at <paramref name="url"/> answers /readyz with 200 (an in-process relay or a `pbs relay` process).</summary>
    public static async Task WaitReadyAsync(string url)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(45);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var r = await http.GetAsync($"{url}/readyz");
                if (r.IsSuccessStatusCode) return;
                last = await r.Content.ReadAsStringAsync();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message; // not up yet, or too slow to answer on a loaded machine: ask again
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"relay at {url} not ready: {last}");
    }

    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await App.StopAsync(cts.Token);
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await StopAsync();
    }
}
