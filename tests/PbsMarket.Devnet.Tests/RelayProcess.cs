using System.Text.RegularExpressions;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Devnet.Tests;

/// <summary>`pbs relay --config FILE` of a test market as a real process: settings file written, started on a free port, ready.</summary>
public static partial class RelayProcess
{
    static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex Listening();

    /// <summary>Starts relay instance <paramref name="name"/> of <paramref name="market"/> (its settings file in <paramref name="dir"/>),
    /// waits until it answers /readyz, and returns the process (reaped with the test host) and its URL.</summary>
    public static async Task<(PbsProcess Process, string Url)> StartAsync(TestMarket market, string dir, string name,
        Action<Dictionary<string, string?>>? configure = null, params string[] extra)
    {
        var settings = market.RelaySettings(name);
        configure?.Invoke(settings);
        var config = TestMarket.WriteSettingsFile(Path.Combine(dir, $"{name}.json"), settings);
        var p = new PbsProcess(["relay", "--config", config, "--urls", "http://127.0.0.1:0", .. extra]);
        Reaper.RegisterProcess(p.Pid);
        try
        {
            var line = await p.WaitForLineAsync(l => Listening().IsMatch(l), StartTimeout);
            var url = Listening().Match(line).Groups[1].Value;
            await RelayInstance.WaitReadyAsync(url);
            return (p, url);
        }
        catch
        {
            await p.DisposeAsync();
            throw;
        }
    }
}
