using System.Globalization;

namespace PbsMarket.Proposer;

/// <summary>Another process holds the data folder.</summary>
public sealed class DataDirInUseException(string dataDir, int? holder, Exception inner)
    : Exception($"the data folder {dataDir} is in use by another pbs proposer ({(holder is { } p ? $"pid {p}" : "pid unknown")} holds the lock on " +
                $"{Path.Combine(dataDir, DataDirLock.FileName)}): two clients on one folder could sign twice; stop it first, or give this one another data folder", inner)
{
    public string DataDir { get; } = dataDir;
    public int? HolderPid { get; } = holder;
}

/// <summary>
/// One proposer client per data folder: an exclusive OS lock (flock(2), which .NET takes for <see cref="FileShare.None"/>)
/// on <c>DataDir/proposer.lock</c>, held for the life of the process and released by the kernel when it ends, however it
/// ends (no stale lock after a kill -9). The holder's pid is written to <c>proposer.lock.pid</c> only to name it in the
/// error; the lock, not that file, decides. (Each key's signing journal has its own lock too.)
/// </summary>
public sealed class DataDirLock : IDisposable
{
    public const string FileName = "proposer.lock";
    readonly FileStream _lock;

    DataDirLock(FileStream f, string dir)
    {
        _lock = f;
        DataDir = dir;
    }

    public string DataDir { get; }

    /// <summary>Takes the folder's lock or throws <see cref="DataDirInUseException"/> naming the process that holds it.</summary>
    public static DataDirLock Acquire(string dataDir)
    {
        var dir = Path.GetFullPath(dataDir);
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, FileName);
        FileStream f;
        try
        {
            f = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new DataDirInUseException(dir, ReadPid(path + ".pid"), e);
        }
        try
        {
            File.WriteAllText(path + ".pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        }
        catch
        {
            f.Dispose();
            throw;
        }
        return new DataDirLock(f, dir);
    }

    static int? ReadPid(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void Dispose() => _lock.Dispose();
}
