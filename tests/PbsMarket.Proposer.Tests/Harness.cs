using PbsMarket.Relay.Infrastructure;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PbsMarket.Core;
using PbsMarket.Proposer;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Proposer.Tests;

/// <summary>Options for a client running all four genesis proposer keys of a test market (so every slot is led).</summary>
static class Harness
{
    static Harness()
    {
        for (var i = 0; i < TestMarket.Proposers.Length; i++)
            Environment.SetEnvironmentVariable($"PBS_TEST_PROPOSER_KEY_{i}", AnvilNode.DevKeys[1 + i]);
    }

    public static readonly ProtocolKey RelayBSigner = ProtocolKey.FromHex(AnvilNode.DevKeys[8]);

    public static ProposerOptions Options(TestMarket m, string dataDir, params RelayEndpointOptions[] relays) => new()
    {
        L1Rpc = m.Anvil.RpcUrl,
        L1ChainId = m.Deployment.L1ChainId,
        L2ChainId = TestMarket.L2ChainId,
        Inbox = m.Deployment.Inbox,
        Registry = m.Deployment.Registry,
        Escrow = m.Deployment.Escrow,
        GenesisMs = m.Deployment.GenesisMs,
        SlotMs = TestMarket.SlotMs,
        CloseOffsetMs = TestMarket.CloseOffsetMs,
        SlotsPerEpoch = (int)m.Deployment.SlotsPerEpoch,
        Keys = [.. Enumerable.Range(0, TestMarket.Proposers.Length).Select(i => new ProposerKeyOptions { PrivateKeyEnv = $"PBS_TEST_PROPOSER_KEY_{i}" })],
        Relays = [.. relays],
        DataDir = dataDir,
        HeaderTimeoutMs = 300,
        PayloadTimeoutMs = 600,
        PostGraceMs = 1500,
    };

    public static RelayEndpointOptions Relay(string name, string url, Address signer) => new() { Name = name, Url = url, Address = signer.ToString() };

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "pbs-proposer-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Client logs go to the console and to $PBS_TEST_LOG_DIR (default /tmp/pbs-proposer-tests/logs)/proposer-&lt;name&gt;.log.</summary>
    public static ILoggerFactory Loggers([System.Runtime.CompilerServices.CallerMemberName] string name = "")
    {
        var dir = Environment.GetEnvironmentVariable("PBS_TEST_LOG_DIR") is { Length: > 0 } d ? d : Path.Combine(Path.GetTempPath(), "pbs-proposer-tests", "logs");
        Directory.CreateDirectory(dir);
        return s_loggers.GetOrAdd(name, n => LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Information).AddSimpleConsole(o => o.SingleLine = true)
            .AddProvider(new FileLoggerProvider(Path.Combine(dir, $"proposer-{n}.log")))));
    }

    static readonly ConcurrentDictionary<string, ILoggerFactory> s_loggers = new();
}

/// <summary>Collects a client's slot reports and waits for them.</summary>
sealed class Reports
{
    readonly ConcurrentDictionary<ulong, SlotReport> _bySlot = new();
    readonly List<SlotReport> _all = [];

    public Reports(ProposerClient client) => client.SlotCompleted += r =>
    {
        _bySlot[r.Slot] = r;
        lock (_all) _all.Add(r);
    };

    public async Task<SlotReport> ForSlotAsync(ulong slot, int timeoutMs = 30_000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (DateTime.UtcNow < until)
        {
            if (_bySlot.TryGetValue(slot, out var r)) return r;
            await Task.Delay(20);
        }
        throw new TimeoutException($"no report for slot {slot}");
    }

    /// <summary>The first <paramref name="count"/> reports for slots after <paramref name="afterSlot"/>.</summary>
    public async Task<IReadOnlyList<SlotReport>> NextAsync(ulong afterSlot, int count, int timeoutMs = 60_000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (DateTime.UtcNow < until)
        {
            lock (_all)
            {
                var after = _all.Where(r => r.Slot > afterSlot).OrderBy(r => r.Slot).Take(count).ToList();
                if (after.Count == count) return after;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"fewer than {count} reports after slot {afterSlot}");
    }
}

/// <summary>
/// A relay impersonator on a real loopback HTTP port: it serves whatever header the test hands it, with a valid
/// AuctionResult signature from its own key, and records every proposal and announcement it receives.
/// </summary>
sealed class RogueRelay : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly Eip712Domain _domain;

    RogueRelay(WebApplication app, string url, Eip712Domain domain)
    {
        _app = app;
        Url = url;
        _domain = domain;
    }

    public ProtocolKey Key { get; } = ProtocolKey.Generate();
    /// <summary>The price it signs (second price, no runner-up: the reserve is what L1 accepts).</summary>
    public BigInteger Price { get; set; } = TestMarket.ReservePrice;
    public Hash32 BidsRoot { get; } = Keccak.Hash([1, 2, 3]);
    public string Url { get; private set; }
    /// <summary>The header to serve for a slot (with its builder signature), or null for 204.</summary>
    public Func<ulong, Task<(Header Header, Signature BuilderSignature)?>> Offer { get; set; } = _ => Task.FromResult<(Header, Signature)?>(null);
    /// <summary>The head it claims through GET /relay/v1/builder/auction (slot, parent, number), or null for 503.</summary>
    public Func<(ulong Slot, Hash32 Parent, ulong Number)?> Auction { get; set; } = () => null;
    public ConcurrentQueue<ProposalSubmission> Proposals { get; } = new();
    public ConcurrentQueue<HeadAnnouncement> Heads { get; } = new();

    public static async Task<RogueRelay> StartAsync(Eip712Domain domain)
    {
        // Port 0: Kestrel binds a free port itself, read back once it listens.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var relay = new RogueRelay(app, "", domain);
        app.MapGet("/relay/v1/proposer/header/{slot}", async (string slot) =>
        {
            var s = ulong.Parse(slot, CultureInfo.InvariantCulture);
            if (await relay.Offer(s) is not { } offer) return Results.NoContent();
            var hash = offer.Header.Hash();
            // Second price with no runner-up settles at the reserve (the inbox's rule, which the client checks).
            var price = relay.Price;
            var root = relay.BidsRoot;
            var relaySig = relay.Key.Sign(Eip712.Digest(domain, new AuctionResult(s, hash, price, root, 1)));
            using var ms = new MemoryStream();
            using (var w = new Utf8JsonWriter(ms))
            {
                w.WriteStartObject();
                w.WritePropertyName("header");
                Wire.WriteHeader(w, offer.Header);
                w.WriteString("header_hash", hash.ToString());
                w.WriteString("builder_signature", offer.BuilderSignature.ToString());
                w.WriteString("price", price.ToString(CultureInfo.InvariantCulture));
                w.WriteString("bids_root", root.ToString());
                w.WriteString("bid_count", "1");
                w.WriteString("relay_signature", relaySig.ToString());
                w.WriteEndObject();
            }
            return Results.Bytes(ms.ToArray(), "application/json");
        });
        app.MapGet("/relay/v1/builder/auction", () => relay.Auction() is { } a
            ? Results.Json(new { slot = a.Slot.ToString(CultureInfo.InvariantCulture), parent_hash = a.Parent.ToString(), number = a.Number.ToString(CultureInfo.InvariantCulture) })
            : Results.StatusCode(503));
        app.MapPost("/relay/v1/proposer/proposals", async (HttpRequest request) =>
        {
            using var ms = new MemoryStream();
            await request.Body.CopyToAsync(ms);
            var p = Wire.ParseProposalSubmission(ms.ToArray());
            if (!p.IsOk) return Results.BadRequest();
            relay.Proposals.Enqueue(p.Value);
            return Results.Text("{\"payload\":\"0xc0\"}", "application/json");
        });
        app.MapPost("/relay/v1/proposer/heads", async (HttpRequest request) =>
        {
            using var ms = new MemoryStream();
            await request.Body.CopyToAsync(ms);
            var a = Wire.ParseHeadAnnouncement(ms.ToArray());
            if (a.IsOk) relay.Heads.Enqueue(a.Value);
            return Results.Text("{\"adopted\":false}", "application/json");
        });
        await app.StartAsync();
        relay.Url = app.Urls.First().TrimEnd('/');
        // Warm it up (JIT, first connection) so that the first real request meets the client's header deadline.
        using (var http = new HttpClient()) await http.GetAsync($"{relay.Url}/relay/v1/builder/auction");
        return relay;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
