//! Folding a torrent's piece states (`#` verified, `+` downloading, `.`
//! missing; one per piece) into the cells of a map that fits the screen. The
//! prompt's text map and the dashboard's coloured one both use [`cells`], so
//! they tell the same story: a cell only looks "have" when every piece in it
//! is, and a mix of verified and missing pieces is shown as such, never as
//! "downloading".

/// What one cell of the map stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// Every piece in the cell is verified.
    Have,
    /// At least one piece in the cell is being downloaded.
    Downloading,
    /// Some pieces verified, the others missing, none in flight; the value is
    /// the verified fraction, strictly between 0 and 1.
    Partial(f64),
    /// No piece in the cell is verified or in flight.
    Missing,
}

impl Cell {
    /// The cell of a group of piece states (empty groups are missing).
    pub fn of(group: &[u8]) -> Cell {
        if group.contains(&b'+') {
            return Cell::Downloading;
        }
        let have = group.iter().filter(|b| **b == b'#').count();
        match have {
            0 => Cell::Missing,
            h if h == group.len() => Cell::Have,
            h => Cell::Partial(h as f64 / group.len() as f64),
        }
    }

    /// The character of the text map.
    pub fn glyph(self) -> char {
        match self {
            Cell::Have => '#',
            Cell::Downloading => '+',
            Cell::Partial(_) => ':',
            Cell::Missing => '.',
        }
    }
}

/// The legend of the text map, in the order of the glyphs above.
pub const LEGEND: &str = "# have   + downloading   : some have   . missing";

/// How many pieces each cell stands for when `pieces` must fit in `cells`.
pub fn pieces_per_cell(pieces: usize, cells: usize) -> usize {
    pieces.div_ceil(cells.max(1)).max(1)
}

/// The map of `states`, `per` pieces to a cell (the last cell may hold fewer).
pub fn cells(states: &str, per: usize) -> Vec<Cell> {
    states.as_bytes().chunks(per.max(1)).map(Cell::of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_have_only_when_every_piece_in_it_is() {
        assert_eq!(Cell::of(b"###"), Cell::Have);
        assert_eq!(Cell::of(b"##."), Cell::Partial(2.0 / 3.0));
        assert_eq!(Cell::of(b"#.."), Cell::Partial(1.0 / 3.0));
        assert_eq!(Cell::of(b"..."), Cell::Missing);
        assert_eq!(Cell::of(b"#+."), Cell::Downloading);
        assert_eq!(Cell::of(b"..+"), Cell::Downloading);
        assert_eq!(Cell::of(b""), Cell::Missing);
    }

    /// The case the old rule got wrong: two-piece cells, every other piece
    /// verified and nothing in flight, were all drawn as "downloading".
    #[test]
    fn verified_and_missing_pieces_are_not_drawn_as_downloading() {
        let states: String = "#.".repeat(50);
        let map: String = cells(&states, 2).into_iter().map(Cell::glyph).collect();
        assert_eq!(map, ":".repeat(50));
        let states = format!("{}{}", "#".repeat(60), ".".repeat(40));
        let map: String = cells(&states, 10).into_iter().map(Cell::glyph).collect();
        assert_eq!(map, "######....");
    }

    #[test]
    fn the_map_fits_the_cells_it_is_given() {
        for pieces in [0, 1, 7, 96, 1954, 100_000] {
            for room in [1, 3, 40, 160, 1600] {
                let states = ".".repeat(pieces);
                let per = pieces_per_cell(pieces, room);
                assert!(cells(&states, per).len() <= room, "{pieces} in {room}");
            }
        }
    }
}
