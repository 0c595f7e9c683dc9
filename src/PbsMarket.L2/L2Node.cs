using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.L2;

/// <summary>Settings of <c>pbs l2node</c> (section <c>L2Node</c>; docs/l2.md).</summary>
public sealed class L2NodeOptions
{
    public string L1Rpc { get; set; } = "";
    public string EngineRpc { get; set; } = "";
    /// <summary>Relays whose proposed heads are executed ahead of L1.</summary>
    public List<string> Relays { get; set; } = [];
    /// <summary>The L2 JSON-RPC port (0: any free port).</summary>
    public int Port { get; set; }
    /// <summary>The relays' port, which also serves <c>pbs_simulateBlock</c> (0: any free port); loopback only.</summary>
    public int RelayPort { get; set; }
    /// <summary>The address the L2 JSON-RPC listens on.</summary>
    public string Listen { get; set; } = "127.0.0.1";
    public int PollMs { get; set; } = 100;
    public int RpcTimeoutMs { get; set; } = 5000;
    public int RelayTimeoutMs { get; set; } = 1000;
    public int MaxPayloadBytes { get; set; } = 1 << 20;

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(L1Rpc)) yield return "L2Node:L1Rpc: required (the L1 JSON-RPC URL)";
        if (string.IsNullOrWhiteSpace(EngineRpc)) yield return "L2Node:EngineRpc: required (the L2 execution engine's JSON-RPC URL)";
        if (Port is < 0 or > 65535) yield return $"L2Node:Port: {Port} is not a port";
        if (RelayPort is < 0 or > 65535) yield return $"L2Node:RelayPort: {RelayPort} is not a port";
        if (PollMs is < 10 or > 60_000) yield return $"L2Node:PollMs: {PollMs} is outside 10..60000";
        if (RpcTimeoutMs is < 100 or > 120_000) yield return $"L2Node:RpcTimeoutMs: {RpcTimeoutMs} is outside 100..120000";
        if (RelayTimeoutMs is < 100 or > 60_000) yield return $"L2Node:RelayTimeoutMs: {RelayTimeoutMs} is outside 100..60000";
        foreach (var r in Relays)
            if (!Uri.TryCreate(r, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")) yield return $"L2Node:Relays: \"{r}\" is not an http(s) URL";
    }
}

/// <summary>
/// <c>pbs l2node</c>: derives the L2 chain on the engine (<see cref="Derivation"/>) from L1 and from the relays' proposed
/// heads, and serves the L2 JSON-RPC (<see cref="L2RpcServer"/>).
/// </summary>
public sealed class L2Node : IAsyncDisposable
{
    public WebApplication App { get; }
    public Derivation Derivation { get; }
    public Mempool Mempool { get; }
    public string RpcUrl => Url(0);
    /// <summary>The relays' URL (serves <c>pbs_simulateBlock</c> too).</summary>
    public string RelayRpcUrl => Url(1);
    readonly JsonRpcClient _engineRpc;
    readonly JsonRpcClient _l1Rpc;

    L2Node(WebApplication app, Derivation derivation, Mempool mempool, JsonRpcClient engine, JsonRpcClient l1)
    {
        App = app;
        Derivation = derivation;
        Mempool = mempool;
        _engineRpc = engine;
        _l1Rpc = l1;
    }

    string Url(int i) => App.Urls.ElementAt(i).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal);

    public static L2Node Build(L2NodeOptions o, DeployedMarket market, Action<WebApplicationBuilder>? configure = null)
    {
        var problems = o.Validate().ToList();
        if (problems.Count > 0) throw new InvalidOperationException("invalid l2node configuration:" + string.Concat(problems.Select(p => "\n  " + p)));
        var b = WebApplication.CreateSlimBuilder();
        configure?.Invoke(b);
        b.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Parse(o.Listen), o.Port);
            k.Listen(IPAddress.Loopback, o.RelayPort);
            k.Limits.MaxRequestBodySize = L2RpcServer.MaxBodyBytes;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        });
        var engineRpc = new JsonRpcClient(o.EngineRpc, TimeSpan.FromMilliseconds(o.RpcTimeoutMs));
        var l1Rpc = new JsonRpcClient(o.L1Rpc, TimeSpan.FromMilliseconds(o.RpcTimeoutMs));
        var mempool = new Mempool(TimeProvider.System);
        b.Services.AddSingleton(mempool);
        b.Services.AddSingleton(o);
        b.Services.AddSingleton(market);
        b.Services.AddSingleton(sp => new Derivation(new L2Engine(engineRpc), market.L2ChainId, sp.GetRequiredService<ILoggerFactory>().CreateLogger("PbsMarket.L2.Derivation")));
        b.Services.AddSingleton(sp => new L2RpcServer(sp.GetRequiredService<Derivation>(), mempool, market.L2ChainId));
        b.Services.AddSingleton(sp => new DerivationService(o, market, sp.GetRequiredService<Derivation>(), sp.GetRequiredService<L2RpcServer>(), l1Rpc,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("PbsMarket.L2.Node")));
        b.Services.AddHostedService(sp => sp.GetRequiredService<DerivationService>());
        var app = b.Build();
        var rpc = app.Services.GetRequiredService<L2RpcServer>();
        var service = app.Services.GetRequiredService<DerivationService>();
        app.MapPost("/", (HttpContext ctx) => rpc.HandleAsync(ctx, relayPort: ctx.Connection.LocalPort == RelayPortOf(app)));
        app.MapGet("/livez", () => Results.Text("ok"));
        app.MapGet("/readyz", () => service.Ready is null ? Results.Text("ready") : Results.Text(service.Ready, statusCode: 503));
        return new L2Node(app, app.Services.GetRequiredService<Derivation>(), mempool, engineRpc, l1Rpc);
    }

    static int RelayPortOf(WebApplication app) => new Uri(app.Urls.ElementAt(1)).Port;

    public Task StartAsync(CancellationToken ct = default) => App.StartAsync(ct);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync(CancellationToken.None);
        await App.DisposeAsync();
        _engineRpc.Dispose();
        _l1Rpc.Dispose();
    }
}

/// <summary>The derivation loop: L1 first, then each relay's proposed head, then the mempool's pruning; every PollMs.</summary>
sealed class DerivationService(L2NodeOptions o, DeployedMarket market, Derivation derivation, L2RpcServer rpc, JsonRpcClient l1, ILogger logger) : BackgroundService
{
    readonly HttpClient _http = new() { Timeout = Timeout.InfiniteTimeSpan }; // ProposedHeads puts one deadline over each whole fetch
    volatile string? _ready = "starting: the chain is not derived from L1 yet";
    readonly Dictionary<string, string> _lastRefusal = [];

    /// <summary>Null when ready, else why not.</summary>
    public string? Ready => _ready;

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var domain = Eip712Domain.PbsMarket(market.L1ChainId, Address.Parse(market.Inbox));
        var inbox = new InboxClient(L1Rpc.Connect(o.L1Rpc, TimeSpan.FromMilliseconds(o.RpcTimeoutMs)), market);
        var feed = new L1Feed(inbox, l1, market.DeployedAtBlock);
        var heads = new ProposedHeads(_http, domain, market, inbox, o.MaxPayloadBytes, TimeSpan.FromMilliseconds(o.RelayTimeoutMs));
        var started = false;
        var lastWarning = DateTime.MinValue;
        var lastPrune = DateTime.MinValue;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!started)
                {
                    await derivation.StartAsync(ct);
                    feed.Rewind();
                    started = true;
                    logger.LogInformation("l2node: engine {Engine} reset to the genesis; deriving the chain from L1 block {From}", o.EngineRpc, market.DeployedAtBlock);
                }
                var changed = false;
                try
                {
                    while (true)
                    {
                        var (posted, next) = await feed.PollAsync(ct);
                        foreach (var p in posted)
                        {
                            logger.LogInformation("{What}", await derivation.ApplyL1Async(p, ct));
                            changed = true;
                        }
                        if (next is null) break;
                        feed.Advance(next.Value);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException and not InvalidOperationException)
                {
                    // Not ready while L1 cannot be read (an L1 RPC down, or a posted header whose payload cannot be found).
                    _ready = $"reading L1 from block {feed.NextBlock} failed: {e.Message}";
                    throw;
                }
                _ready = null;
                foreach (var relay in o.Relays)
                {
                    try
                    {
                        var (block, refusal) = await heads.FetchAsync(relay, ct);
                        if (block is not null && await derivation.ApplyProposedAsync(block.Header, block.HeaderHash, block.Payload, ct) is null) changed = true;
                        if (refusal is not null && (!_lastRefusal.TryGetValue(relay, out var last) || last != refusal))
                            logger.LogWarning("l2node: the head of relay {Relay} is not taken: {Reason}", relay, refusal);
                        if (refusal is not null) _lastRefusal[relay] = refusal; else _lastRefusal.Remove(relay);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException && !ct.IsCancellationRequested)
                    {
                        if (!_lastRefusal.TryGetValue(relay, out var last) || last != "unreachable")
                            logger.LogWarning("l2node: relay {Relay} did not answer: {Error}", relay, e.Message);
                        _lastRefusal[relay] = "unreachable";
                    }
                }
                if (changed || DateTime.UtcNow - lastPrune > TimeSpan.FromSeconds(5))
                {
                    await rpc.PruneMempoolAsync(ct);
                    lastPrune = DateTime.UtcNow;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (InvalidOperationException e)
            {
                // The engine and the derived chain disagree (or L1 broke a chain rule): derive again from the genesis.
                logger.LogError("l2node: {Error}; resetting the engine and deriving again from L1", e.Message);
                started = false;
                _ready = $"re-deriving: {e.Message}";
            }
            catch (Exception e)
            {
                if (DateTime.UtcNow - lastWarning > TimeSpan.FromSeconds(10))
                {
                    logger.LogWarning("l2node: {Error} (retrying every {Poll} ms)", e.Message, o.PollMs);
                    lastWarning = DateTime.UtcNow;
                }
                if (!started) _ready = $"the engine is not reachable: {e.Message}";
            }
            try { await Task.Delay(o.PollMs, ct); }
            catch (OperationCanceledException) { break; }
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }
}
