using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using Nethereum.Signer;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Dashboard.Tests;

/// <summary>What the traffic loop did in one slot.</summary>
public sealed record SlotTraffic(ulong Slot, IReadOnlyList<BigInteger> Values, DateTimeOffset SubmittedAt, bool WillPropose);

/// <summary>
/// One live market for the dashboard tests: a relay serving the built web/dist, three builders
/// bidding every slot from a background loop (the scheduled proposer proposes two slots in three, so
/// the others are missed), and a headless Chromium.
/// </summary>
public sealed class DashboardSession : IAsyncDisposable
{
    static readonly string[] BrowserArgs = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

    public TestMarket Market { get; private set; } = null!;
    volatile RelayInstance _relay = null!;
    public RelayInstance Relay => _relay;
    public int Port { get; private set; }
    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public ConcurrentDictionary<ulong, SlotTraffic> Traffic { get; } = new();
    public ConcurrentQueue<string> TrafficProblems { get; } = new();
    public static string ScreenshotDir { get; } = Path.Combine(RepoPaths.Root, "tests", "PbsMarket.Dashboard.Tests", "TestResults", "screenshots");

    readonly CancellationTokenSource _stop = new();
    Task _loop = Task.CompletedTask;
    volatile bool _paused;
    byte[][] _txs = [];

    public static async Task<DashboardSession> StartAsync(TestServers servers)
    {
        // Generous defaults for every expectation: a loaded 2-core machine renders late, not wrongly.
        Microsoft.Playwright.Assertions.SetDefaultExpectTimeout(15_000);
        var s = new DashboardSession();
        Environment.SetEnvironmentVariable("PBS_WEB_ROOT", await WebDist.EnsureBuiltAsync());
        s.Market = await TestMarket.StartAsync(servers);
        // Kestrel binds a free port itself; the restart test brings a new instance back on the same one.
        s._relay = await s.Market.StartRelayAsync();
        s.Port = new Uri(s._relay.Url).Port;
        s._txs = [.. Enumerable.Range(0, 6).Select(SignedTransfer)];
        s._loop = Task.Run(() => s.TrafficLoopAsync(s._stop.Token));
        s.Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        s.Browser = await s.Playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath(), Headless = true, Args = BrowserArgs });
        return s;
    }

    static string ChromiumPath()
    {
        var path = Environment.GetEnvironmentVariable("PBS_CHROMIUM") ?? "/usr/bin/chromium";
        if (!File.Exists(path))
            throw new PbsMarket.LocalServers.MissingToolException($"chromium is not installed at {path}: run `{RepoPaths.SetupCommand}` (apt-get install -y chromium), or set PBS_CHROMIUM.");
        return path;
    }

    /// <summary>A legacy transfer signed for the test L2 chain, so bids carry real transactions and gas.</summary>
    static byte[] SignedTransfer(int nonce)
    {
        var raw = new LegacyTransactionSigner().SignTransaction(AnvilNode.DevKeys[8], new BigInteger(TestMarket.L2ChainId),
            "0x000000000000000000000000000000000000dEaD", new BigInteger(1000 + nonce), new BigInteger(nonce), new BigInteger(1_000_000_000),
            new BigInteger(21_000), "");
        return Convert.FromHexString(raw.StartsWith("0x", StringComparison.Ordinal) ? raw[2..] : raw);
    }

    /// <summary>
    /// The bid values of one slot: three builders, whose order rotates with the slot, at 10, 13 and
    /// 16 gwei plus the slot number in the fourth decimal place, so that every value (and its
    /// formatted form on the page, "13.0042 gwei") belongs to one slot only. Builder 0 first sends a
    /// lower bid (7.x gwei) every other slot, which its later bid replaces.
    /// </summary>
    public static IEnumerable<(int Builder, BigInteger Value)> BidsFor(ulong slot)
    {
        var frac = new BigInteger(slot % 10_000) * 100_000;
        if (slot % 2 == 1) yield return (0, 7 * Gwei + frac + 3);
        for (var b = 0; b < 3; b++)
        {
            var rank = (int)((slot + (ulong)b) % 3);
            yield return (b, (10 + 3 * rank) * Gwei + frac + 7 + b);
        }
    }

    static readonly BigInteger Gwei = 1_000_000_000;

    /// <summary>Stops the traffic (e.g. while the relay is down) and resumes it.</summary>
    public void PauseTraffic(bool paused) => _paused = paused;

    async Task TrafficLoopAsync(CancellationToken ct)
    {
        ulong last = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (_paused) { await Task.Delay(100, ct); continue; }
                var relay = _relay;
                var a = await Market.NextAuctionAsync(relay.Client, 350);
                if (a.Slot <= last) { await Task.Delay(50, ct); continue; }
                last = a.Slot;
                var values = new List<BigInteger>();
                var i = 0;
                foreach (var (b, value) in BidsFor(a.Slot))
                {
                    var n = (int)((a.Slot + (ulong)i++) % 4); // 0 to 3 transactions
                    var payload = PayloadCodec.Encode(_txs[..n]);
                    var (h, sig, p) = TestMarket.Bid(a, TestMarket.Builders[b], value, payload, gasUsed: 21_000UL * (ulong)n);
                    await relay.Client.SubmitAsync(h, sig, p, ct);
                    values.Add(value);
                }
                var propose = a.Slot % 3 != 0;
                Traffic[a.Slot] = new SlotTraffic(a.Slot, values, DateTimeOffset.UtcNow, propose);
                await Market.WaitClosedAsync(a.Slot);
                if (propose) await ProposeAsync(relay, a.Slot, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The relay may be down (restart test) or a bid may miss its window: note it and go on.
                TrafficProblems.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {e.GetType().Name}: {e.Message}");
                while (TrafficProblems.Count > 200) TrafficProblems.TryDequeue(out _);
                try { await Task.Delay(200, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>The scheduled proposer fetches the winning header and signs it, as AuctionFlowTests does.</summary>
    async Task ProposeAsync(RelayInstance relay, ulong slot, CancellationToken ct)
    {
        var proposer = Market.ProposerOf(slot);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{relay.Url}/relay/v1/proposer/header/{slot}");
        request.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(Market.Domain, new HeaderRequest(slot, proposer.Address))).ToString());
        using var response = await http.SendAsync(request, ct);
        if (response.StatusCode != HttpStatusCode.OK) return; // 204: no bid, nothing to propose
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        var headerHash = Hash32.Parse(doc.RootElement.GetProperty("header_hash").GetString()!);
        var signed = SettlementRules.ProposalFor(slot, headerHash, Wire.ParseSettlementOf(doc.RootElement).Value!, Address.Parse(doc.RootElement.GetProperty("relay").GetString()!));
        var body = Wire.ToUtf8(ProposalSubmission.Of(signed, proposer.Sign(Eip712.Digest(Market.Domain, signed))), Wire.WriteProposalSubmission);
        var (status, text) = await relay.Client.PostRawAsync("relay/v1/proposer/proposals", body, ct: ct);
        if (status != 200) TrafficProblems.Enqueue($"proposal for slot {slot}: {status} {text}");
    }

    /// <summary>Stops the relay, waits, and starts a new instance on the same port (same Redis and PostgreSQL).</summary>
    public async Task StopRelayAsync() => await _relay.StopAsync();

    public async Task StartRelayAgainAsync() => _relay = await Market.StartRelayAsync(port: Port);

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var text = await http.GetStringAsync($"{Relay.Url}/{path.TrimStart('/')}");
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    /// <summary>A page on the dashboard that records console errors and uncaught exceptions.</summary>
    public async Task<WatchedPage> OpenAsync(int width, int height, bool mobile = false)
    {
        var context = await Browser.NewContextAsync(new()
        {
            ViewportSize = new() { Width = width, Height = height },
            DeviceScaleFactor = mobile ? 2 : 1,
            IsMobile = mobile,
            HasTouch = mobile,
        });
        var page = await context.NewPageAsync();
        var watched = new WatchedPage(context, page);
        await page.GotoAsync(Relay.Url + "/");
        return watched;
    }

    public static async Task<string> ScreenshotAsync(IPage page, string name, bool fullPage = false)
    {
        Directory.CreateDirectory(ScreenshotDir);
        var path = Path.Combine(ScreenshotDir, name + ".png");
        await page.EvaluateAsync("() => window.scrollTo(0, 0)");
        await page.ScreenshotAsync(new() { Path = path, FullPage = fullPage });
        TestContext.Current.TestOutputHelper?.WriteLine($"screenshot: {path}");
        Console.WriteLine($"screenshot: {path}");
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try { await _loop; } catch (Exception e) when (e is OperationCanceledException) { }
        if (Browser is not null) await Browser.DisposeAsync();
        Playwright?.Dispose();
        if (Market is not null) await Market.DisposeAsync();
        _stop.Dispose();
    }
}

/// <summary>A browser page with what it logged: console errors and uncaught exceptions.</summary>
public sealed class WatchedPage : IAsyncDisposable
{
    readonly ConcurrentQueue<string> _errors = new();
    public IBrowserContext Context { get; }
    public IPage Page { get; }

    public WatchedPage(IBrowserContext context, IPage page)
    {
        Context = context;
        Page = page;
        page.Console += (_, m) => { if (m.Type == "error") _errors.Enqueue($"console: {m.Text} ({m.Location})"); };
        page.PageError += (_, e) => _errors.Enqueue($"uncaught: {e}");
    }

    public IReadOnlyList<string> Errors => [.. _errors];

    public void ClearErrors() => _errors.Clear();

    public ILocator ByTestId(string id) => Page.GetByTestId(id);

    public async ValueTask DisposeAsync() => await Context.DisposeAsync();
}

/// <summary>Builds web/dist with scripts/build-web.sh when it is missing or older than web/src.</summary>
public static class WebDist
{
    static readonly SemaphoreSlim Gate = new(1, 1);

    public static async Task<string> EnsureBuiltAsync()
    {
        var web = Path.Combine(RepoPaths.Root, "web");
        var dist = Path.Combine(web, "dist");
        await Gate.WaitAsync();
        try
        {
            var index = Path.Combine(dist, "index.html");
            var newestSource = Directory.EnumerateFiles(Path.Combine(web, "src"), "*", SearchOption.AllDirectories).Max(File.GetLastWriteTimeUtc);
            if (!File.Exists(index) || File.GetLastWriteTimeUtc(index) < newestSource || !File.Exists(Path.Combine(dist, "vendor", "uPlot.iife.min.js")))
            {
                var psi = new ProcessStartInfo("bash", [Path.Combine(RepoPaths.Root, "scripts", "build-web.sh")])
                {
                    RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = RepoPaths.Root,
                };
                using var p = Process.Start(psi)!;
                var err = p.StandardError.ReadToEndAsync();
                var output = await p.StandardOutput.ReadToEndAsync();
                await p.WaitForExitAsync();
                if (p.ExitCode != 0)
                    throw new InvalidOperationException($"scripts/build-web.sh failed ({p.ExitCode}): {await err}{output}");
            }
            return dist;
        }
        finally
        {
            Gate.Release();
        }
    }
}
