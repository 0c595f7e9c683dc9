using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace PbsMarket.Testing;

/// <summary>A throwaway redis-server on a free loopback port, nothing persisted.</summary>
public sealed class RedisServer() : ServerProcess("redis")
{
    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=2000,syncTimeout=2000";
    public string Endpoint => $"127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(RepoPaths.Require("redis-server", "apt-get install -y redis-server"))
        {
            WorkingDirectory = Dir,
        };
        foreach (var arg in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", Dir, "--daemonize", "no", "--loglevel", "warning", "--databases", "64" })
            psi.ArgumentList.Add(arg);
        return psi;
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", Port, ct);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray(), ct);
        var buffer = new byte[16];
        var n = await stream.ReadAsync(buffer, ct);
        return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
    }
}
