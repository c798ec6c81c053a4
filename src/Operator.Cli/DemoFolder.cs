using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace SmpRobot.Operator.Cli;

/// <summary>A process that a demo folder belongs to: its id and start time (so a reused id is not mistaken for it).</summary>
/// <param name="Pid">Process id.</param>
/// <param name="StartedUtc">When that process started; null when it could not be read.</param>
internal sealed record DemoProcess(int Pid, DateTime? StartedUtc)
{
    /// <summary>Two readings of one process's start time agree within this (the kernel counts in clock ticks).</summary>
    private static readonly TimeSpan StartTolerance = TimeSpan.FromSeconds(1);

    /// <summary>The running process <paramref name="process"/>.</summary>
    public static DemoProcess Of(Process process) => new(process.Id, StartTime(process));

    /// <summary>This process (the <c>smp demo</c> console).</summary>
    public static DemoProcess Current()
    {
        using var self = Process.GetCurrentProcess();
        return Of(self);
    }

    /// <summary>
    /// True while a process with this id runs and started when this one did. Unsure (no start time recorded, or it
    /// cannot be read) counts as alive: a live demo's folder must never be removed.
    /// </summary>
    public bool IsAlive()
    {
        Process process;
        try
        {
            process = Process.GetProcessById(Pid);
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
        using (process)
        {
            if (process.HasExited) return false;
            if (StartedUtc is not { } recorded || StartTime(process) is not { } now) return true;
            return (now - recorded).Duration() <= StartTolerance;
        }
    }

    private static DateTime? StartTime(Process process)
    {
        try
        {
            return process.StartTime.ToUniversalTime();
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return null;
        }
    }
}

/// <summary>What a demo folder's marker file says: who owns it and whether it is kept on purpose.</summary>
/// <param name="Owner">The <c>smp demo</c> process.</param>
/// <param name="Controller">The controller it started on the folder, once started.</param>
/// <param name="Kept">Kept on purpose (<c>--keep</c>, or a session left to resolve/resume): never removed by a later demo.</param>
/// <param name="Reason">Why it is kept, for a person looking at the folder.</param>
internal sealed record DemoFolderMarker(DemoProcess Owner, DemoProcess? Controller, bool Kept, string? Reason);

/// <summary>
/// The data folder of one <c>smp demo</c> (<c>$TMPDIR/smp-demo-XXXX</c>: the controller's database and log), with a
/// marker file naming the owning processes and whether it is kept. A demo removes its own folder when the session
/// completed with nothing in doubt, and removes the unkept folders of earlier demos that are no longer running.
/// </summary>
internal sealed class DemoFolder
{
    /// <summary>Name prefix of a demo folder.</summary>
    public const string Prefix = "smp-demo-";

    /// <summary>The marker file in a demo folder. Only a folder holding one is ever removed.</summary>
    public const string MarkerFileName = ".smp-demo.json";

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    private readonly DemoProcess owner;
    private DemoProcess? controller;

    private DemoFolder(string path, DemoProcess owner)
    {
        Path = path;
        this.owner = owner;
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>Creates a new <c>smp-demo-XXXX</c> folder in the temporary folder, marked as owned by <paramref name="owner"/> and not kept.</summary>
    public static DemoFolder Create(DemoProcess owner)
    {
        var folder = new DemoFolder(Directory.CreateTempSubdirectory(Prefix).FullName, owner);
        folder.WriteMarker(new DemoFolderMarker(owner, null, Kept: false, Reason: null));
        return folder;
    }

    /// <summary>Records the controller started on the folder: while it runs the folder is live even if the console died.</summary>
    public void SetController(DemoProcess process)
    {
        controller = process;
        WriteMarker(new DemoFolderMarker(owner, controller, Kept: false, Reason: null));
    }

    /// <summary>Marks the folder kept on purpose for <paramref name="reason"/>: no later demo removes it.</summary>
    public void MarkKept(string reason) => WriteMarker(new DemoFolderMarker(owner, controller, Kept: true, reason));

    /// <summary>Removes the folder and everything in it (call only once its controller has stopped).</summary>
    public void Remove() => Directory.Delete(Path, recursive: true);

    /// <summary>The marker of <paramref name="folder"/>; null when there is none or it is not a readable marker.</summary>
    public static DemoFolderMarker? ReadMarker(string folder)
    {
        var file = new FileInfo(System.IO.Path.Combine(folder, MarkerFileName));
        // A link could point anywhere: only a plain file is a marker.
        if (!file.Exists || file.LinkTarget is not null || file.Length > 4096) return null;
        try
        {
            var marker = JsonSerializer.Deserialize<DemoFolderMarker>(File.ReadAllText(file.FullName), JsonOptions);
            return marker is { Owner.Pid: > 0 } ? marker : null;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes the folders <c>smp-demo-*</c> directly in <paramref name="root"/> that earlier demos left: those with a
    /// marker, not kept, whose owner and controller both no longer run. Anything else is left alone: unmarked folders,
    /// kept ones, links, live demos, folders that cannot be removed (another user's). Returns the folders removed.
    /// </summary>
    /// <param name="root">Where demo folders are made (the temporary folder).</param>
    /// <param name="isAlive">Whether a recorded process still runs (tests); default <see cref="DemoProcess.IsAlive"/>.</param>
    public static IReadOnlyList<string> RemoveStale(string root, Func<DemoProcess, bool>? isAlive = null)
    {
        isAlive ??= p => p.IsAlive();
        var removed = new List<string>();
        IEnumerable<DirectoryInfo> candidates;
        try
        {
            candidates = [.. new DirectoryInfo(root).EnumerateDirectories(Prefix + "*", SearchOption.TopDirectoryOnly)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return removed;
        }
        foreach (var dir in candidates)
        {
            if (dir.LinkTarget is not null) continue;
            var marker = ReadMarker(dir.FullName);
            if (marker is null || marker.Kept) continue;
            if (isAlive(marker.Owner) || (marker.Controller is { } c && isAlive(c))) continue;
            try
            {
                dir.Delete(recursive: true);
                removed.Add(dir.FullName);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not ours to remove (another user's /tmp folder) or busy: leave it.
            }
        }
        return removed;
    }

    /// <summary>Writes the marker whole (a temporary file renamed over it), so a reader never sees half of it.</summary>
    private void WriteMarker(DemoFolderMarker marker)
    {
        var target = System.IO.Path.Combine(Path, MarkerFileName);
        var temp = target + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(marker, JsonOptions));
        File.Move(temp, target, overwrite: true);
    }
}
