using System.Globalization;

namespace XenAoe.Lab.Cluster;

/// <summary>
/// A process's state letter and start time from /proc/PID/stat. The start time (field 22, clock ticks since boot) never
/// changes for a process, exec included, and differs for a later process that reuses the pid: pid plus start time names
/// one process for the machine's uptime.
/// </summary>
public readonly record struct ProcStat(int Pid, char State, ulong StartTime)
{
    /// <summary>False for a zombie or a dead process: it runs no code any more and only waits to be reaped.</summary>
    public bool Running => State is not ('Z' or 'X' or 'x');

    /// <summary>Reads /proc/PID/stat; null when there is no such process.</summary>
    public static ProcStat? Read(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            // The process is gone (or went while reading).
            return null;
        }
        // The command name (field 2) is in parentheses and may hold spaces and ')': the fields after the last ')' are plain.
        var close = text.LastIndexOf(')');
        if (close < 0)
            return null;
        var fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
        if (fields.Length < 20 || fields[0].Length != 1 || !ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var start))
            return null;
        return new ProcStat(pid, fields[0][0], start);
    }

    /// <summary>True when <paramref name="pid"/> is still the process that started at <paramref name="startTime"/> and has not exited.</summary>
    public static bool IsRunning(int pid, ulong startTime) =>
        Read(pid) is { } stat && stat.StartTime == startTime && stat.Running;
}
