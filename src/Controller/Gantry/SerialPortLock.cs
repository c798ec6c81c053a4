using System.Globalization;

namespace SmpRobot.Controller.Gantry;

/// <summary>The serial port is held by another process: nothing was written to it, and it was not opened.</summary>
public sealed class GantryInUseException(string message) : IOException(message);

/// <summary>
/// Exclusive use of a serial device, taken before the device is opened (opening a tty asserts DTR,
/// which resets an Arduino-based board mid-session): an advisory lock on a lock file named after the
/// device's real path (symlinks resolved), held for as long as the transport is open, released by
/// the kernel if the process dies. A second controller on the same device is refused at once.
/// </summary>
/// <remarks>
/// .NET's <see cref="FileShare.None"/> on Unix is an advisory <c>flock(LOCK_EX)</c>; the lock file lives in
/// /run/lock when it is writable (where serial tools look), else in the temporary folder, so every
/// controller on the machine looks at the same file. The holder's process id is written beside it
/// (a locked file cannot be read by another process) for the refusal message.
/// </remarks>
public sealed class SerialPortLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _pidPath;

    private SerialPortLock(FileStream lockFile, string pidPath)
    {
        _lock = lockFile;
        _pidPath = pidPath;
    }

    /// <summary>The lock file of <paramref name="devicePath"/>.</summary>
    public static string LockPathFor(string devicePath)
    {
        var real = RealPath(devicePath);
        var name = "smprobot-" + string.Concat(real.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')) + ".lock";
        var runLock = "/run/lock";
        var dir = Directory.Exists(runLock) && IsWritable(runLock) ? runLock : Path.Combine(Path.GetTempPath(), "smprobot-locks");
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }

    /// <summary>Takes the lock of <paramref name="devicePath"/> or throws <see cref="GantryInUseException"/>.</summary>
    public static SerialPortLock Acquire(string devicePath)
    {
        var path = LockPathFor(devicePath);
        var pidPath = path + ".pid";
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            var holder = File.Exists(pidPath) ? File.ReadAllText(pidPath).Trim() : "";
            throw new GantryInUseException($"{devicePath} is in use by another process{(holder.Length > 0 ? " (pid " + holder + ")" : "")}: "
                + $"another smp-controller is already connected to it; stop that one first (lock {path}). The port was not opened");
        }
        File.WriteAllText(pidPath, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return new SerialPortLock(file, pidPath);
    }

    public void Dispose()
    {
        try
        {
            File.Delete(_pidPath);
        }
        catch (IOException)
        {
            // Best effort: a stale pid file names a process that no longer holds the lock.
        }
        _lock.Dispose();
    }

    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        try
        {
            return File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            return full;
        }
    }

    private static bool IsWritable(string dir)
    {
        try
        {
            var probe = Path.Combine(dir, ".smprobot-probe-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
