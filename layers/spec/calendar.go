package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// calendarShorthands are the named calendar events of systemd.time(7).
var calendarShorthands = []string{"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly", "semiannually", "semi-annually"}

// weekdayNames are the days an expression may name, short and long.
var weekdayNames = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

// calendarField is one field of a date or a time and its range.
type calendarField struct {
	name     string
	min, max int
	// digits is the most digits a value may have; fraction allows a
	// decimal fraction (seconds).
	digits   int
	fraction bool
}

var (
	fieldYear   = calendarField{name: "year", min: 1970, max: 2199, digits: 4}
	fieldMonth  = calendarField{name: "month", min: 1, max: 12, digits: 2}
	fieldDay    = calendarField{name: "day", min: 1, max: 31, digits: 2}
	fieldHour   = calendarField{name: "hour", min: 0, max: 23, digits: 2}
	fieldMinute = calendarField{name: "minute", min: 0, max: 59, digits: 2}
	fieldSecond = calendarField{name: "second", min: 0, max: 59, digits: 2, fraction: true}
)

// checkCalendar checks a systemd calendar expression against the part of
// systemd.time(7)'s grammar nodebake accepts: a shorthand ("daily"), or
// "[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [UTC]" whose
// fields are "*" or comma lists of values, ranges ("8..17") and
// repetitions ("0/15"), each within its range. Everything it accepts,
// systemd accepts too; a few rare forms systemd also takes are refused
// (two-digit years, "*/N", time zones other than UTC: the image's clock
// is UTC).
func checkCalendar(expr string) error {
	if strings.TrimSpace(expr) != expr {
		return fmt.Errorf("%q: leading or trailing white space", expr)
	}
	if containsFold(calendarShorthands, expr) {
		return nil
	}
	tokens := strings.Fields(expr)
	// The parts, each at most once and in this order.
	const (
		partWeekdays = iota
		partDate
		partTime
		partZone
		parts
	)
	next := partWeekdays
	for _, tok := range tokens {
		var part int
		var err error
		switch {
		case strings.EqualFold(tok, "UTC"):
			part = partZone
		case strings.Contains(tok, ":"):
			part, err = partTime, checkCalendarTime(tok)
		case strings.ContainsAny(tok, "-~") && tok[0] != '-' && !isASCIILetter(rune(tok[0])):
			part, err = partDate, checkCalendarDate(tok)
		case isASCIILetter(rune(tok[0])) && next > partWeekdays && checkWeekdays(tok) == nil:
			return fmt.Errorf("%q: the weekdays %q are out of order: want [WEEKDAYS] [DATE] [TIME] [UTC]", expr, tok)
		case isASCIILetter(rune(tok[0])) && next > partWeekdays:
			return fmt.Errorf("%q: time zone %q: only UTC is taken (the image's clock runs in UTC)", expr, tok)
		case isASCIILetter(rune(tok[0])):
			part, err = partWeekdays, checkWeekdays(tok)
		default:
			return fmt.Errorf("%q: %q is not a weekday, a date (MONTH-DAY) or a time (HOUR:MINUTE)", expr, tok)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", expr, err)
		}
		if part < next {
			return fmt.Errorf("%q: %q is out of order: want [WEEKDAYS] [DATE] [TIME] [UTC]", expr, tok)
		}
		next = part + 1
	}
	if next == partZone+1 && len(tokens) == 1 {
		return fmt.Errorf("%q: a time zone alone is not a calendar event", expr)
	}
	return nil
}

// checkWeekdays checks "Mon", "Mon,Wed", "Mon..Fri", "mon-wed,Sun".
func checkWeekdays(tok string) error {
	for item := range strings.SplitSeq(tok, ",") {
		lo, hi, isRange := strings.Cut(item, "..")
		if !isRange {
			lo, hi, isRange = strings.Cut(item, "-")
		}
		days := []string{lo}
		if isRange {
			days = append(days, hi)
		}
		var idx []int
		for _, d := range days {
			i := slices.IndexFunc(weekdayNames, func(n string) bool { return strings.EqualFold(n, d) })
			if i < 0 {
				return fmt.Errorf("weekday %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun (or the whole name), ranges as Mon..Fri", d)
			}
			idx = append(idx, i%7)
		}
		if isRange && idx[1] < idx[0] {
			return fmt.Errorf("weekdays %q: a range runs from Monday towards Sunday (Mon..Fri, Sat..Sun)", item)
		}
	}
	return nil
}

// checkCalendarDate checks "[YEAR-]MONTH-DAY" and "[YEAR-]MONTH~DAY"
// (the DAYth last day of the month).
func checkCalendarDate(tok string) error {
	head, day, last := strings.Cut(tok, "~")
	var fields []string
	if last {
		fields = append(strings.Split(head, "-"), day)
	} else {
		fields = strings.Split(tok, "-")
	}
	var kinds []calendarField
	switch len(fields) {
	case 2:
		kinds = []calendarField{fieldMonth, fieldDay}
	case 3:
		kinds = []calendarField{fieldYear, fieldMonth, fieldDay}
	default:
		return fmt.Errorf("date %q: want [YEAR-]MONTH-DAY", tok)
	}
	for i, f := range fields {
		if err := checkCalendarField(kinds[i], f); err != nil {
			return fmt.Errorf("date %q: %w", tok, err)
		}
	}
	return nil
}

// checkCalendarTime checks "HOUR:MINUTE[:SECOND]".
func checkCalendarTime(tok string) error {
	fields := strings.Split(tok, ":")
	kinds := []calendarField{fieldHour, fieldMinute, fieldSecond}
	if len(fields) < 2 || len(fields) > 3 {
		return fmt.Errorf("time %q: want HOUR:MINUTE[:SECOND]", tok)
	}
	for i, f := range fields {
		if err := checkCalendarField(kinds[i], f); err != nil {
			return fmt.Errorf("time %q: %w", tok, err)
		}
	}
	return nil
}

// checkCalendarField checks one field: "*", or a comma list of values,
// ranges (A..B) and repetitions (A/N, A..B/N).
func checkCalendarField(k calendarField, s string) error {
	if s == "*" {
		return nil
	}
	for item := range strings.SplitSeq(s, ",") {
		base, rep, repeats := strings.Cut(item, "/")
		if repeats {
			if n, err := strconv.Atoi(rep); err != nil || n < 1 || len(rep) > 4 || rep[0] == '+' {
				return fmt.Errorf("%s %q: the repetition %q must be a positive number", k.name, item, rep)
			}
		}
		lo, hi, isRange := strings.Cut(base, "..")
		a, err := calendarValue(k, lo)
		if err != nil {
			return err
		}
		if isRange {
			b, err := calendarValue(k, hi)
			if err != nil {
				return err
			}
			if b < a {
				return fmt.Errorf("%s %q: the range ends before it starts", k.name, item)
			}
		}
	}
	return nil
}

// calendarValue parses one value of a field.
func calendarValue(k calendarField, s string) (float64, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	switch {
	case whole == "" || len(whole) > k.digits || !allDigits(whole):
		return 0, fmt.Errorf("%s %q: want a number of at most %d digits, or *", k.name, s, k.digits)
	case hasFrac && (!k.fraction || frac == "" || len(frac) > 6 || !allDigits(frac)):
		return 0, fmt.Errorf("%s %q: not a whole number", k.name, s)
	case k.digits == 4 && len(whole) != 4:
		return 0, fmt.Errorf("%s %q: write the year with four digits", k.name, s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < float64(k.min) || v >= float64(k.max+1) {
		return 0, fmt.Errorf("%s %q: out of range %d..%d", k.name, s, k.min, k.max)
	}
	return v, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
