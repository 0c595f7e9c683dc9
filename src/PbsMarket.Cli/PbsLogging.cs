using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PbsMarket.Cli;

/// <summary>
/// Logging of every <c>pbs</c> command that runs a host: production defaults (no per-request lines from ASP.NET Core
/// or HttpClient), plain single lines by default, one JSON object per line with <c>--log-format json</c> or
/// <c>Logging:Format=json</c>. All of it is configuration, so an operator's <c>Logging:LogLevel:…</c> still wins.
/// </summary>
public static class PbsLogging
{
    public static Option<string?> FormatOption() => new("--log-format")
    {
        Description = "Console log format: text (default) or json, one JSON object per line (Logging:Format).",
    };

    /// <summary>Below every other configuration source: what holds unless the operator says otherwise.</summary>
    static readonly Dictionary<string, string?> Defaults = new()
    {
        ["Logging:LogLevel:Default"] = "Information",
        // One Information line per request (Hosting, Routing, HttpClient's logical handler) is a log flood at thousands of bids a second.
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Warning",
        ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
        // A failing readiness probe is its answer (/readyz says what is wrong); the components log their own state changes once.
        ["Logging:LogLevel:Microsoft.Extensions.Diagnostics.HealthChecks"] = "Critical",
        ["Logging:Console:FormatterOptions:SingleLine"] = "true",
        ["Logging:Console:FormatterOptions:TimestampFormat"] = "HH:mm:ss.fff ",
        ["Logging:Console:FormatterOptions:UseUtcTimestamp"] = "true",
    };

    static readonly Dictionary<string, string?> Json = new()
    {
        ["Logging:Console:FormatterOptions:TimestampFormat"] = "yyyy-MM-ddTHH:mm:ss.fffZ",
        ["Logging:Console:FormatterOptions:UseUtcTimestamp"] = "true",
        ["Logging:Console:FormatterOptions:IncludeScopes"] = "false",
        ["Logging:Console:FormatterOptions:JsonWriterOptions:Indented"] = "false",
    };

    /// <summary>Call from the host's configure callback, after the settings file and the environment are added.</summary>
    public static void Apply(IHostApplicationBuilder b, string? formatFlag)
    {
        b.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Defaults });
        var format = formatFlag ?? b.Configuration["Logging:Format"] ?? "text";
        switch (format.Trim().ToLowerInvariant())
        {
            // The formatter is chosen in code: the web host's own AddSimpleConsole would beat a configured FormatterName.
            case "text": b.Logging.AddSimpleConsole(); break;
            case "json": b.Configuration.AddInMemoryCollection(Json); b.Logging.AddJsonConsole(); break;
            default: throw new UsageException($"Logging:Format (--log-format) = \"{format}\": use text or json");
        }
    }
}
