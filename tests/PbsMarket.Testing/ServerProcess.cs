using System.Diagnostics;
using System.Text;

namespace PbsMarket.Testing;

/// <summary>
/// One real server started as a child process, its output kept in a log file inside its own temp
/// folder. Stop it with <see cref="StopAsync"/> (its data stays) and bring it back on the same port
/// with <see cref="StartAsync"/>; <see cref="DisposeAsync"/> stops it and deletes the folder.
/// </summary>
public abstract class ServerProcess : IAsyncDisposable
{
    readonly StringBuilder _recentOutput = new();
    Process? _process;
    StreamWriter? _log;

    protected ServerProcess(string kind)
    {
        Kind = kind;
        Port = FreePort.Next();
        Dir = Reaper.NewTempDir(kind);
        LogPath = Path.Combine(Dir, $"{kind}.log");
    }

    public string Kind { get; }
    public int Port { get; }
    public string Dir { get; }
    public string LogPath { get; }
    public bool IsRunning => _process is { HasExited: false };
    public int? Pid => _process?.Id;

    protected virtual TimeSpan StartTimeout => TimeSpan.FromSeconds(30);
    protected virtual int StopSignal => Reaper.SIGTERM;

    protected abstract ProcessStartInfo StartInfo();
    protected abstract Task<bool> IsReadyAsync(CancellationToken ct);
    protected virtual Task PrepareAsync(CancellationToken ct) => Task.CompletedTask;

    bool _prepared;

    public async Task StartAsync(CancellationToken ct = default)
    {
        if (IsRunning) return;
        if (!_prepared)
        {
            await PrepareAsync(ct);
            _prepared = true;
        }
        var psi = StartInfo();
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        _log ??= new StreamWriter(LogPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        if (!process.Start())
            throw new InvalidOperationException($"{Kind} did not start ({psi.FileName})");
        Reaper.RegisterProcess(process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited)
                throw new InvalidOperationException(
                    $"{Kind} exited with code {process.ExitCode} while starting on port {Port}. Its last output:\n{RecentOutput}");
            try
            {
                using var probe = CancellationTokenSource.CreateLinkedTokenSource(ct);
                probe.CancelAfter(TimeSpan.FromSeconds(2));
                if (await IsReadyAsync(probe.Token)) return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // not ready yet
            }
            await Task.Delay(50, ct);
        }
        await StopAsync();
        throw new TimeoutException($"{Kind} did not answer on port {Port} within {StartTimeout.TotalSeconds:0} s. Its last output:\n{RecentOutput}");
    }

    void OnLine(string? line)
    {
        if (line is null) return;
        lock (_recentOutput)
        {
            _log?.WriteLine(line);
            _recentOutput.AppendLine(line);
            if (_recentOutput.Length > 8000) _recentOutput.Remove(0, _recentOutput.Length - 4000);
        }
    }

    public string RecentOutput
    {
        get { lock (_recentOutput) return _recentOutput.ToString(); }
    }

    /// <summary>Stops the server gracefully (then forcibly after 10 s); its data folder stays.</summary>
    public async Task StopAsync()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            Reaper.Signal(process.Id, StopSignal);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        process.Dispose();
    }

    /// <summary>Kills the server at once, as a crash would.</summary>
    public async Task KillAsync()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        lock (_recentOutput)
        {
            _log?.Dispose();
            _log = null;
        }
        try
        {
            if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // the reaper removes it when the test process exits
        }
        GC.SuppressFinalize(this);
    }
}
