using System.Diagnostics;
using System.Net.Http.Headers;

namespace PbsMarket.Testing.Market;

/// <summary>
/// The relay's server-sent event stream (/relay/v1/data/stream), read in the background from the moment this is created,
/// so that a test can wait for the event that says the relay knows something rather than for a time.
/// </summary>
public sealed class RelayEvents : IAsyncDisposable
{
    readonly HttpClient _http = new() { Timeout = Timeout.InfiniteTimeSpan };
    readonly CancellationTokenSource _stop = new();
    readonly List<string> _data = [];
    readonly Task _reading;
    readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);

    RelayEvents(string relayUrl) => _reading = ReadAsync(relayUrl);

    /// <summary>Connects to the stream and returns once the relay has answered (events published from then on are seen).</summary>
    public static async Task<RelayEvents> ListenAsync(string relayUrl)
    {
        var events = new RelayEvents(relayUrl);
        await events._connected.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return events;
    }

    async Task ReadAsync(string relayUrl)
    {
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, $"{relayUrl}/relay/v1/data/stream");
            req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, _stop.Token);
            resp.EnsureSuccessStatusCode();
            _connected.TrySetResult();
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(_stop.Token));
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
                if (line.StartsWith("data:", StringComparison.Ordinal)) lock (_data) _data.Add(line[5..].Trim());
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
        {
            _connected.TrySetException(e);
        }
    }

    /// <summary>Waits until an event's JSON contains every one of <paramref name="parts"/> (e.g. "\"type\":\"proposer_slashed\"", an address).</summary>
    public async Task WaitForAsync(TimeSpan timeout, params string[] parts)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            lock (_data)
                if (_data.Any(d => parts.All(p => d.Contains(p, StringComparison.OrdinalIgnoreCase)))) return;
            if (deadline.Elapsed > timeout)
                throw new TimeoutException($"no relay event with {string.Join(", ", parts)} within {timeout.TotalSeconds:0} s (saw {_data.Count} events)");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try { await _reading; } catch (OperationCanceledException) { }
        _http.Dispose();
        _stop.Dispose();
    }
}
